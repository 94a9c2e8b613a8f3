r"""A classifier two-sample test: can a small network tell two weighted samples apart?

Half of each sample trains a small MLP (weighted BCE, classes balanced); on the other
half the weighted area under the ROC curve,

    AUC = Σ_j Σ_i w_i [s(b_j) > s(a_i)] / (n_b Σ_i w_i),

measures the separation: 0.5 when the samples follow the same density. Under that null
its standard error is √((n_a + n_b + 1) / (12 n_a n_b)) (Mann–Whitney), with n_a the
effective size (Σw)²/Σw² of the weighted sample. Used by ``check-ratio``: the nominal
sample reweighted by r(x|θ) against a sample simulated at θ (arXiv:1610.06545).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

__all__ = ["two_sample_auc", "weighted_auc"]


def weighted_auc(
    scores_a: NDArray, weights_a: NDArray, scores_b: NDArray, weights_b: NDArray | None = None
) -> tuple[float, float]:
    """P(s_b > s_a) with weights on sample a (and b), and its standard error under the null."""
    order = np.argsort(scores_a)
    below = np.concatenate([[0.0], np.cumsum(weights_a[order])])
    # For each b score: the weight of a-scores below it.
    counts = below[np.searchsorted(scores_a[order], scores_b, side="left")]
    n_a = weights_a.sum() ** 2 / np.sum(weights_a**2)
    if weights_b is None:
        auc = float(counts.mean() / below[-1])
        n_b = scores_b.size
    else:
        auc = float(weights_b @ counts / (weights_b.sum() * below[-1]))
        n_b = weights_b.sum() ** 2 / np.sum(weights_b**2)
    return auc, float(np.sqrt((n_a + n_b + 1) / (12 * n_a * n_b)))


def two_sample_auc(
    a: NDArray,
    weights_a: NDArray,
    b: NDArray,
    rng: np.random.Generator,
    *,
    epochs: int = 3,
    width: int = 32,
    batch_size: int = 1024,
    weights_b: NDArray | None = None,
) -> tuple[float, float]:
    """Train on half of a (weighted, shape (Na, F)) vs half of b (shape (Nb, F)); AUC on the rest.

    ``weights_b`` (Nb,) weights sample b too (weighted data, negative weights allowed).

    Returns:
        The held-out weighted AUC and its standard error under the null hypothesis.
    """
    torch.manual_seed(int(rng.integers(2**31)))
    half_a, half_b = len(a) // 2, len(b) // 2
    x = np.concatenate([a[:half_a], b[:half_b]])
    mean, scale = x.mean(0), x.std(0) + 1e-12
    wa = weights_a[:half_a] / weights_a[:half_a].sum() * half_b  # balance the classes
    x_t = torch.as_tensor((x - mean) / scale, dtype=torch.float32)
    y_t = torch.cat([torch.zeros(half_a), torch.ones(half_b)])
    wb = np.ones(half_b) if weights_b is None else weights_b[:half_b] / weights_b[:half_b].mean()
    w_t = torch.as_tensor(np.concatenate([wa, wb]), dtype=torch.float32)
    net = nn.Sequential(
        nn.Linear(a.shape[1], width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, 1),
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = nn.BCEWithLogitsLoss(reduction="none")
    for _ in range(epochs):
        for idx in torch.randperm(len(x_t)).split(batch_size):
            optimiser.zero_grad()
            (loss(net(x_t[idx])[:, 0], y_t[idx]) * w_t[idx]).mean().backward()
            optimiser.step()
    with torch.no_grad():

        def score(v: NDArray) -> NDArray:
            return net(torch.as_tensor((v - mean) / scale, dtype=torch.float32))[:, 0].numpy()

        held_b = None if weights_b is None else weights_b[half_b:]
        return weighted_auc(score(a[half_a:]), weights_a[half_a:], score(b[half_b:]), held_b)
