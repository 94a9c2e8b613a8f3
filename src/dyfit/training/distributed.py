r"""Data-parallel training: the process group torchrun describes, and what ranks share.

``torchrun --nproc-per-node K -m dyfit train ...`` starts K processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`init_from_env` joins them into one group (NCCL with one GPU per process
when CUDA is used, gloo on CPU). Each rank draws its own shards of every sample
(see :mod:`dyfit.training.loop`), :class:`~torch.nn.parallel.DistributedDataParallel`
averages the gradients, validation sums are all-reduced, and only rank 0 writes.

Batch normalisation: on GPUs the layers become :class:`~torch.nn.SyncBatchNorm`
(statistics over the global batch, as in one process). PyTorch implements
SyncBatchNorm for GPUs only, so on CPU each rank normalises with the statistics
of its own B/K events; with B/K ≥ 10³ their relative noise is ≲ 3 % and the
running statistics are rank 0's (DDP broadcasts buffers before every forward,
:func:`broadcast_buffers` after every epoch), so all ranks hold one model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor, distributed, nn

__all__ = [
    "World",
    "init_from_env",
    "current",
    "shutdown",
    "wrap",
    "all_reduce_sum",
    "broadcast_buffers",
    "check_in_sync",
]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    Attributes:
        rank: The global rank, 0 … size − 1; rank 0 writes files.
        size: The number of processes (1 without torchrun).
        local_rank: The rank on this machine, which picks the GPU.
        backend: ``"nccl"``, ``"gloo"`` or None when not distributed.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self) -> torch.device | None:
        """The GPU this rank trains on under NCCL, else None (the config decides)."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else None


def current() -> World:
    """The :class:`World` of the process group already initialised, or a single process."""
    if not (distributed.is_available() and distributed.is_initialized()):
        return World()
    return World(
        distributed.get_rank(),
        distributed.get_world_size(),
        int(os.environ.get("LOCAL_RANK", 0)),
        distributed.get_backend(),
    )


def init_from_env(device: str = "auto") -> World:
    """Join the group torchrun describes in the environment; a single process otherwise.

    Arguments:
        device: The config's device: NCCL when it allows CUDA and a GPU is visible, else gloo.
    """
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size == 1 or "RANK" not in os.environ:
        return World()
    if not distributed.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        # env:// reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE
        distributed.init_process_group("nccl" if use_cuda else "gloo")
    return current()


def shutdown(wait: bool = True) -> None:
    """Leave the process group, if one was joined.

    Arguments:
        wait: Meet the other ranks first (a barrier): gloo aborts a process whose peer
            tears down the group while it still uses it. False after an error, where a
            peer may never arrive.
    """
    if distributed.is_available() and distributed.is_initialized():
        if wait:
            distributed.barrier()
        distributed.destroy_process_group()


def wrap(world: World, module: nn.Module) -> nn.Module:
    """``module`` for training: itself in one process, else DDP (with SyncBatchNorm on GPU)."""
    if not world.distributed:
        return module
    if world.backend == "nccl":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return nn.parallel.DistributedDataParallel(module, device_ids=[world.local_rank])
    return nn.parallel.DistributedDataParallel(module)


def all_reduce_sum(world: World, values: Tensor) -> Tensor:
    """The element-wise sum of ``values`` over all ranks (``values`` itself in one process)."""
    if not world.distributed:
        return values
    out = values.detach().clone()
    distributed.all_reduce(out)
    return out


@torch.no_grad()
def broadcast_buffers(world: World, model: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank."""
    if world.distributed:
        for buffer in model.buffers():
            distributed.broadcast(buffer, 0)


@torch.no_grad()
def check_in_sync(world: World, model: nn.Module) -> None:
    """Raise RuntimeError unless every rank holds rank 0's parameters and buffers bit for bit.

    DDP guarantees this when every rank runs the same steps; a failure is a bug.
    """
    if not world.distributed:
        return
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        reference = tensor.detach().clone()
        distributed.broadcast(reference, 0)
        differs = torch.tensor(float(not torch.equal(reference, tensor)), device=tensor.device)
        if all_reduce_sum(world, differs).item() > 0:
            raise RuntimeError(f"data-parallel replicas disagree in {name}")
