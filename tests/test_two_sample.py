"""The classifier two-sample test used by check-ratio."""

import numpy as np
import pytest
import torch

from dyfit.training.two_sample import two_sample_auc, weighted_auc

torch.set_num_threads(1)


def test_weighted_auc_equals_the_pairwise_count():
    rng = np.random.default_rng(0)
    sa, sb, wa = rng.normal(size=300), rng.normal(0.4, 1, 200), rng.uniform(0.2, 2, 300)
    brute = np.sum(wa[None, :] * (sb[:, None] > sa[None, :])) / (sb.size * wa.sum())
    assert weighted_auc(sa, wa, sb)[0] == pytest.approx(brute, rel=1e-12)


def test_null_error_matches_the_spread_of_the_auc():
    """Under the null the Mann-Whitney error is the spread of the AUC over repetitions."""
    rng = np.random.default_rng(1)
    aucs = [
        weighted_auc(rng.normal(size=400), np.ones(400), rng.normal(size=300)) for _ in range(400)
    ]
    spread = np.std([a for a, _ in aucs], ddof=1)
    # the standard deviation of 400 values scatters by 1/sqrt(2*399) = 3.5 %; allow 4 sigma
    assert abs(spread / aucs[0][1] - 1) < 4 / np.sqrt(2 * 399)


def _gauss(rng, n, shift):
    return rng.normal(size=(n, 2)) + np.array([shift, 0.0])


def test_classifier_auc_sees_a_shift_and_closes_after_exact_reweighting():
    rng = np.random.default_rng(2)
    a, b = _gauss(rng, 40_000, 0.0), _gauss(rng, 40_000, 0.15)
    shifted, err = two_sample_auc(a, np.ones(len(a)), b, rng)
    assert shifted - 0.5 > 5 * err  # a mean shift of 0.15 sigma is visible
    # weights N(x; 0.15, 1) / N(x; 0, 1) make sample a follow sample b's density
    w = np.exp(0.15 * a[:, 0] - 0.5 * 0.15**2)
    closed, err = two_sample_auc(a, w, b, rng)
    assert abs(closed - 0.5) < 3 * err
    same, err = two_sample_auc(a, np.ones(len(a)), _gauss(rng, 40_000, 0.0), rng)
    assert abs(same - 0.5) < 3 * err
