"""EarlyStopping: the best-epoch bookkeeping shared by the training loops."""

from __future__ import annotations

import math

import pytest
import torch

from dyfit.training.stopping import EarlyStopping


def reference(values: list[float], patience: int, sign: float) -> tuple[int, int]:
    """(best epoch, epochs run) by the textbook rule, written independently."""
    best, best_epoch = math.inf, -1
    for epoch, v in enumerate(values):
        if sign * v < best:
            best, best_epoch = sign * v, epoch
        elif epoch - best_epoch >= patience:
            return best_epoch, epoch + 1
    return best_epoch, len(values)


@pytest.mark.parametrize("mode,sign", [("min", 1.0), ("max", -1.0)])
@pytest.mark.parametrize("patience", [1, 2, 3])
def test_best_epoch_and_stop_match_the_reference_and_weights_are_restored(mode, sign, patience):
    values = [0.9, 0.7, 0.8, 0.75, 0.6, 0.65, 0.66, 0.67, 0.5]
    values = [sign * v for v in values]
    net = torch.nn.Linear(2, 1)
    stopping, weights, run = EarlyStopping(patience, mode), [], 0
    for epoch, v in enumerate(values):
        with torch.no_grad():
            net.weight.fill_(float(epoch))  # the weights say which epoch they are from
        weights.append(net.weight.clone())
        run += 1
        if stopping.update(v, net, epoch):
            break
    best_epoch, epochs = reference(values, patience, sign)
    assert (stopping.best_epoch, run) == (best_epoch, epochs)
    assert stopping.best == values[best_epoch]
    assert stopping.stopped_early == (epochs < len(values))
    stopping.restore(net)
    assert torch.equal(net.weight, weights[best_epoch])


def test_a_rebuilt_state_continues_like_the_original():
    """What resume does: rebuild from the saved fields, then feed the remaining epochs."""
    values, net = [0.5, 0.4, 0.45, 0.3, 0.35, 0.36], torch.nn.Linear(1, 1)
    whole = EarlyStopping(2)
    for epoch, v in enumerate(values):
        whole.update(v, net, epoch)
    first = EarlyStopping(2)
    for epoch, v in enumerate(values[:3]):
        first.update(v, net, epoch)
    fields = ("best", "stale", "best_epoch", "best_state")
    resumed = EarlyStopping(2, **{k: getattr(first, k) for k in fields})
    for epoch, v in enumerate(values[3:], start=3):
        resumed.update(v, net, epoch)
    assert [getattr(resumed, k) for k in fields[:3]] == [getattr(whole, k) for k in fields[:3]]
    assert resumed.stopped_early == whole.stopped_early


def test_first_epoch_counts_even_when_nan_and_restore_before_any_update_is_a_no_op():
    net = torch.nn.Linear(1, 1)
    before = net.weight.clone()
    EarlyStopping(1).restore(net)
    assert torch.equal(net.weight, before)
    stopping = EarlyStopping(1)
    assert not stopping.update(math.nan, net, 0)
    assert stopping.best_epoch == 0 and stopping.best_state is not None
