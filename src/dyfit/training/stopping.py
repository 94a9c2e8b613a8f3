"""Early stopping on a validation metric, keeping the best epoch's weights.

One object holds what the training loops (:mod:`dyfit.training.loop`,
:mod:`dyfit.training.cvae`, :mod:`dyfit.training.dctr`) track between epochs: the best
value so far, the epoch that reached it, a copy of its weights and the epochs since.
Its fields are plain data, so a resumed run (:mod:`dyfit.training.resume`) rebuilds it
from the saved state.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

__all__ = ["EarlyStopping"]


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without improvement; remember the best weights.

    Arguments:
        patience: Epochs without improvement before :meth:`update` says stop.
        mode: "min" for a loss, "max" for a score such as the ELBO.
        best: The best value so far (±inf before the first epoch).
        stale: Epochs since the best one.
        best_epoch: The epoch of ``best`` (−1 before the first).
        best_state: A copy of the model's state dict at ``best_epoch``.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(1, 1)
        >>> stopping = EarlyStopping(patience=1)
        >>> [stopping.update(v, net, e) for e, v in enumerate([0.5, 0.4, 0.45])]
        [False, False, True]
        >>> stopping.best_epoch, stopping.best
        (1, 0.4)
    """

    patience: int
    mode: Literal["min", "max"] = "min"
    best: float | None = None
    stale: int = 0
    best_epoch: int = -1
    best_state: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        if self.best is None:
            self.best = math.inf if self.mode == "min" else -math.inf

    @property
    def stopped_early(self) -> bool:
        """Whether ``patience`` epochs have passed without improvement."""
        return self.stale >= self.patience

    def update(self, value: float, model: nn.Module, epoch: int) -> bool:
        """Record epoch ``epoch``'s ``value``; copy the weights if it is the best so far.

        The first epoch always counts as the best (even a NaN value), so that
        :meth:`restore` has weights to go back to. Returns whether to stop now.
        """
        better = value < self.best if self.mode == "min" else value > self.best
        if self.best_state is None or better:
            self.best, self.stale, self.best_epoch = value, 0, epoch
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1
        return self.stopped_early

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best epoch's weights into ``model`` (unchanged before any update)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model
