r"""Muon transport through the spectrometer: drifts, thin magnetic kicks, FMAG's iron.

A track is described at a plane z by its position (x, y) in cm, its slopes
tx = px/pz and ty = py/pz, and its momentum p in GeV; arrays have any common shape,
(N, 2) for N events of (μ+, μ-) in :mod:`dyfit.detector.spectrometer`.

A thin kick with transverse momentum k rotates the momentum about the y axis (a
field along y) by α = k / p_xz, p_xz = √(px² + pz²): |p| and py are kept and px grows
by ≈ k. FMAG is two halves of iron with the kick at its mid-plane; each half takes half
the mean energy loss ΔE(p0) of the entry momentum p0 (E ≈ p: m_μ²/2p² < 10⁻⁴ here),
Gaussian straggling, and multiple scattering with the PDG correlated displacement and
angle per projection (PDG Review of Particle Physics, "Passage of particles through
matter", multiple scattering through small angles):

    Δx = L θ0 (z1/√12 + z2/2),   Δtx = z2 θ0,

z1, z2 independent standard normals, θ0 of the half-length at the half's mean momentum,
scaled as √L from the full-length θ0 (the Highland logarithm is dropped). Angles are
added to slopes (small-angle approximation, |tx| ≲ 0.15).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dyfit.detector.config import FmagConfig

__all__ = [
    "drift",
    "inside",
    "fmag_mean_eloss",
    "thin_kick",
    "scatter",
    "traverse_fmag",
]

_P_FLOOR = 1e-3  # GeV; keeps stopped muons finite until their events are dropped


def drift(x: NDArray, y: NDArray, tx: NDArray, ty: NDArray, dz: NDArray | float):
    """Straight-line positions after a step dz (cm) along z; returns (x, y)."""
    return x + tx * dz, y + ty * dz


def inside(
    x: NDArray, y: NDArray, x_range: tuple[float, float], y_range: tuple[float, float]
) -> NDArray[np.bool_]:
    """True where (x, y) lies within the open window x_range × y_range (cm)."""
    return (x > x_range[0]) & (x < x_range[1]) & (y > y_range[0]) & (y < y_range[1])


def fmag_mean_eloss(p0: NDArray, fmag: FmagConfig) -> NDArray:
    r"""The mean energy loss over FMAG's full length for entry momentum p0, GeV.

    ΔE(p0) = a + b log10(p0 / p_ref), the config's tunable model (7.7-8.1 GeV for
    10-100 GeV muons by default).
    """
    p0 = np.maximum(p0, _P_FLOOR)
    return fmag.eloss_GeV + fmag.eloss_log_slope_GeV * np.log10(p0 / fmag.eloss_p_ref_GeV)


def thin_kick(
    tx: NDArray, ty: NDArray, p: NDArray, kick: NDArray | float
) -> tuple[NDArray, NDArray, NDArray[np.bool_]]:
    r"""Rotate momenta about y by α = kick / p_xz.

    Arguments:
        tx, ty: Slopes before the kick, shape (*,).
        p: Momenta (GeV), shape (*,).
        kick: Signed transverse kick (GeV), charge × pT kick, broadcastable to (*,).

    Returns:
        The slopes after the kick and a mask of tracks still moving downstream (pz > 0).
    """
    pz = np.maximum(p, _P_FLOOR) / np.sqrt(1.0 + tx * tx + ty * ty)
    px = tx * pz
    alpha = kick / (pz * np.sqrt(1.0 + tx * tx))
    cos_a = np.cos(alpha)
    sin_a = np.sin(alpha)
    pz_new = pz * cos_a - px * sin_a
    forward = pz_new > 1e-6 * pz
    pz_safe = np.where(forward, pz_new, pz)
    return (px * cos_a + pz * sin_a) / pz_safe, ty * pz / pz_safe, forward


def scatter(
    x: NDArray,
    y: NDArray,
    tx: NDArray,
    ty: NDArray,
    theta0: NDArray,
    length: float,
    rng: np.random.Generator,
) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    r"""Add multiple scattering over a layer of ``length`` cm, projected rms angle ``theta0``.

    Both projections independently, with the PDG correlated displacement and angle.
    Returns the new (x, y, tx, ty).
    """
    z = rng.standard_normal((4,) + np.shape(x))
    scale = length * theta0
    x = x + scale * (z[0] * (1.0 / np.sqrt(12.0)) + 0.5 * z[1])
    y = y + scale * (z[2] * (1.0 / np.sqrt(12.0)) + 0.5 * z[3])
    return x, y, tx + theta0 * z[1], ty + theta0 * z[3]


def traverse_fmag(
    x: NDArray,
    y: NDArray,
    tx: NDArray,
    ty: NDArray,
    p: NDArray,
    charge: NDArray,
    fmag: FmagConfig,
    rng: np.random.Generator,
    smearing: bool = True,
) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray, NDArray[np.bool_]]:
    r"""Carry tracks from FMAG's upstream face to its downstream face.

    Arguments:
        x, y: Positions at ``fmag.z_start_cm`` (cm), shape (*,).
        tx, ty: Slopes at entry, shape (*,).
        p: Entry momenta (GeV), shape (*,).
        charge: ±1, broadcastable to (*,).
        smearing: False drops straggling and multiple scattering (mean loss kept).

    Returns:
        (x, y, tx, ty, p) at ``fmag.z_end_cm`` and a mask of tracks that stayed inside the
        iron's half-width at entry, mid-plane and exit and did not stop or turn back.
    """
    half = 0.5 * (fmag.z_end_cm - fmag.z_start_cm)
    half_loss = 0.5 * fmag_mean_eloss(p, fmag)
    # θ0 ∝ √L: each half carries 1/√2 of the full-length scattering angle.
    theta0_half_p = fmag.ms_theta0_GeV / np.sqrt(2.0)
    ok = np.abs(x) < fmag.half_width_cm
    for step in range(2):
        p_out = p - half_loss
        if smearing and fmag.straggling_GeV > 0.0:
            p_out = p_out - fmag.straggling_GeV / np.sqrt(2.0) * rng.standard_normal(p.shape)
        ok &= p_out > 0.0
        x, y = drift(x, y, tx, ty, half)
        if smearing and fmag.ms_theta0_GeV > 0.0:
            p_mean = np.maximum(0.5 * (p + p_out), _P_FLOOR)
            x, y, tx, ty = scatter(x, y, tx, ty, theta0_half_p / p_mean, half, rng)
        p = np.maximum(p_out, _P_FLOOR)
        ok &= np.abs(x) < fmag.half_width_cm
        if step == 0:
            tx, ty, forward = thin_kick(tx, ty, p, charge * fmag.pt_kick_GeV)
            ok &= forward
    return x, y, tx, ty, p, ok
