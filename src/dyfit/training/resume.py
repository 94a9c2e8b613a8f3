r"""The training state written after every epoch, so that a killed run can continue.

One file, ``RUN_DIR/checkpoint/state.safetensors``, replaced atomically: a kill at
any moment leaves the previous epoch's complete state. Tensors (safetensors, no
pickle) hold the model's parameters and buffers (``model/…``), the best weights so
far (``best/…``) and Adam's moments and step counts (``optimiser/<i>/…``); the
header's metadata holds, as JSON, the epoch, the training config, the history,
the early-stopping and scheduler state, Adam's parameter groups, the provenance
and the sha256 of the tensors, so a flipped bit is refused rather than trained on.

No random-generator state is stored: every draw and every batch order derives from
``SeedSequence(seed, spawn_key=(purpose, epoch, …))``, so epoch e + 1 needs only e.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dyfit import __version__
from dyfit.atomic import atomic_path
from dyfit.errors import CheckpointError

__all__ = ["STATE", "FORMAT", "save_state", "load_state", "read_state"]

STATE = Path("checkpoint") / "state.safetensors"
FORMAT = "dyfit-training-state"
FORMAT_VERSION = 1


def _encode(obj: Any) -> Any:
    """JSON-ready ``obj``: tuples as lists, non-finite floats tagged (strict JSON has no inf)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"float": repr(obj)}
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if obj.keys() == {"float"}:
            return float(obj["float"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        digest.update(f"{key}:{t.dtype}:{list(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_state(
    run_dir: str | Path,
    meta: dict[str, Any],
    model: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor],
    optimiser: dict[str, Any],
) -> Path:
    """Write the training state atomically; returns the file's path.

    Arguments:
        run_dir: The run folder; the state goes to ``run_dir/checkpoint/state.safetensors``.
        meta: JSON-serialisable state (epoch, config, history, scheduler, …).
        model, best: The current and the best state dicts.
        optimiser: ``optimizer.state_dict()`` (per-parameter tensors and parameter groups).
    """
    tensors = {f"model/{k}": v for k, v in model.items()}
    tensors |= {f"best/{k}": v for k, v in best.items()}
    for i, per_param in optimiser["state"].items():
        tensors |= {f"optimiser/{i}/{k}": v for k, v in per_param.items()}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = _encode(meta | {"optimiser_groups": optimiser["param_groups"]})
    header |= {"format": FORMAT, "format_version": FORMAT_VERSION, "dyfit_version": __version__}
    header["sha256"] = _digest(tensors)
    path = Path(run_dir) / STATE
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"state": json.dumps(header, allow_nan=False)})
    return path


def read_state(run_dir: str | Path) -> dict[str, Any]:
    """The state's JSON part (epoch, config, history, …), with its format checked."""
    return load_state(run_dir)[0]


def load_state(
    run_dir: str | Path,
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """The saved state: (meta, {"model": …, "best": …, "optimiser": state_dict}).

    Raises:
        CheckpointError: No state file, an unreadable or truncated one, another format,
            or tensors whose sha256 differs from the one recorded.
    """
    path = Path(run_dir) / STATE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no {STATE}; nothing to resume")
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            header = json.loads((f.metadata() or {})["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise CheckpointError(f"{path} cannot be read ({err}); it is corrupted") from None
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is not a dyfit training state of version {FORMAT_VERSION}; start a new run"
        )
    if header.get("sha256") != _digest(tensors):
        raise CheckpointError(f"{path}: the tensors do not match their sha256; it is corrupted")
    meta = _decode(header)
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "best": {}}
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        group, _, name = key.partition("/")
        if group == "optimiser":
            index, _, name = name.partition("/")
            per_param.setdefault(int(index), {})[name] = value
        else:
            parts[group][name] = value
    optimiser = {"state": per_param, "param_groups": meta.pop("optimiser_groups")}
    return meta, parts | {"optimiser": optimiser}
