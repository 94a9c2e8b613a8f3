r"""Four-vectors, boosts and the Collins-Soper frame, vectorised over events.

Four-vectors are arrays with shape (*, 4) ordered (E, px, py, pz), in GeV; the
beam travels along +z in the lab and the target nucleon is at rest.

The Collins-Soper frame (Collins & Soper, Phys. Rev. D 16 (1977) 2219) is
defined *exactly*, not by the massless light-cone formula: boost the beam P1
and target P2 four-momenta into the dilepton rest frame; there

    ẑ = (p̂1 - p̂2) / |p̂1 - p̂2|     (bisects the beam and the reversed target),
    x̂ = -(p̂1 + p̂2) / |p̂1 + p̂2|    (in the hadron plane, along the dilepton q_T),
    ŷ = ẑ × x̂,

and θ, φ are the polar and azimuthal angles of the positive lepton (SeaQuest's
convention; taking the negative lepton flips the sign of μ only). The light-cone
formula cosθ = 2(l⁺₁l⁻₂ - l⁻₁l⁺₂)/(M √(M² + q_T²)) differs from this by up to 0.01
at √s = 15 GeV.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "M_PROTON",
    "M_MUON",
    "minkowski_dot",
    "invariant_mass",
    "boost",
    "beam_target",
    "collins_soper_axes",
    "collins_soper_angles",
    "leptons_from_collins_soper",
    "dilepton_observables",
]

M_PROTON = 0.93827208816  # GeV (PDG 2022)
M_MUON = 0.1056583755  # GeV (PDG 2022)


def minkowski_dot(a: ArrayLike, b: ArrayLike) -> NDArray:
    r"""a·b = E_a E_b - p⃗_a·p⃗_b, over the last axis."""
    a = np.asarray(a)
    b = np.asarray(b)
    return a[..., 0] * b[..., 0] - np.sum(a[..., 1:] * b[..., 1:], axis=-1)


def invariant_mass(p: ArrayLike) -> NDArray:
    r"""√(p·p), clipped at zero, with shape (*,)."""
    return np.sqrt(np.clip(minkowski_dot(p, p), 0.0, None))


def boost(p: ArrayLike, beta: ArrayLike) -> NDArray:
    r"""Lorentz-boost four-vectors p into the frame moving with velocity β.

    Arguments:
        p: Four-vectors, with shape (*, 4).
        beta: Frame velocities, with shape (*, 3) and |β| < 1.

    Returns:
        The four-vectors seen from the moving frame, with shape (*, 4).
    """
    p = np.asarray(p, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    # Component by component: much faster than reductions over a length-3 axis.
    bx, by, bz = beta[..., 0], beta[..., 1], beta[..., 2]
    e, px, py, pz = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    gamma = 1.0 / np.sqrt(1.0 - (bx * bx + by * by + bz * bz))
    bp = bx * px + by * py + bz * pz
    # (γ - 1)/β² written as γ²/(γ + 1) stays finite at β → 0.
    coef = gamma * gamma / (gamma + 1.0) * bp - gamma * e
    out = np.empty(np.broadcast_shapes(p.shape, beta.shape[:-1] + (4,)))
    out[..., 0] = gamma * (e - bp)
    out[..., 1] = px + coef * bx
    out[..., 2] = py + coef * by
    out[..., 3] = pz + coef * bz
    return out


def beam_target(beam_energy: float, target_mass: float = M_PROTON) -> tuple[NDArray, NDArray]:
    r"""The lab four-momenta of a beam proton of energy E (GeV) along +z and a target at rest."""
    pz = np.sqrt(beam_energy**2 - M_PROTON**2)
    return np.array([beam_energy, 0.0, 0.0, pz]), np.array([target_mass, 0.0, 0.0, 0.0])


def _unit(v: NDArray) -> NDArray:
    norm = np.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2 + v[..., 2] ** 2)
    return v / norm[..., None]


def _dot3(a: NDArray, b: NDArray) -> NDArray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def collins_soper_axes(
    q: ArrayLike, p_beam: ArrayLike, p_target: ArrayLike
) -> tuple[NDArray, NDArray, NDArray]:
    r"""The Collins-Soper axes (x̂, ŷ, ẑ) in the dilepton rest frame, each (*, 3).

    Arguments:
        q: The dilepton four-momenta in the lab, with shape (*, 4).
        p_beam: The beam four-momentum, with shape (4,) or (*, 4).
        p_target: The target four-momentum, with shape (4,) or (*, 4).
    """
    q = np.asarray(q, dtype=np.float64)
    beta = q[..., 1:] / q[..., :1]
    p1 = _unit(boost(p_beam, beta)[..., 1:])
    p2 = _unit(boost(p_target, beta)[..., 1:])
    z = _unit(p1 - p2)
    x = -_unit(p1 + p2)
    y = np.empty_like(z)
    y[..., 0] = z[..., 1] * x[..., 2] - z[..., 2] * x[..., 1]
    y[..., 1] = z[..., 2] * x[..., 0] - z[..., 0] * x[..., 2]
    y[..., 2] = z[..., 0] * x[..., 1] - z[..., 1] * x[..., 0]
    return x, y, z


def collins_soper_angles(
    l_plus: ArrayLike, l_minus: ArrayLike, p_beam: ArrayLike, p_target: ArrayLike
) -> tuple[NDArray, NDArray]:
    r"""cosθ and φ ∈ (-π, π] of the positive lepton in the Collins-Soper frame.

    Arguments:
        l_plus: The positive lepton's lab four-momenta, with shape (*, 4).
        l_minus: The negative lepton's lab four-momenta, with shape (*, 4).
        p_beam: The beam four-momentum, with shape (4,).
        p_target: The target four-momentum, with shape (4,).

    Returns:
        cosθ and φ, each with shape (*,).
    """
    l_plus = np.asarray(l_plus, dtype=np.float64)
    q = l_plus + np.asarray(l_minus, dtype=np.float64)
    x, y, z = collins_soper_axes(q, p_beam, p_target)
    lep = boost(l_plus, q[..., 1:] / q[..., :1])[..., 1:]
    lx, ly, lz = (_dot3(lep, axis) for axis in (x, y, z))
    return lz / np.sqrt(lx * lx + ly * ly + lz * lz), np.arctan2(ly, lx)


def leptons_from_collins_soper(
    q: ArrayLike,
    costh: ArrayLike,
    phi: ArrayLike,
    p_beam: ArrayLike,
    p_target: ArrayLike,
    m_lepton: float = M_MUON,
) -> tuple[NDArray, NDArray]:
    r"""Build the lab four-momenta (l⁺, l⁻) of a dilepton q with given Collins-Soper angles.

    The inverse of :func:`collins_soper_angles`: the positive lepton is placed at
    (θ, φ) in the Collins-Soper frame of q, the negative one back to back, and
    both are boosted to the lab.

    Returns:
        l⁺ and l⁻, each with shape (*, 4).
    """
    q = np.asarray(q, dtype=np.float64)
    c = np.asarray(costh, dtype=np.float64)
    p = np.asarray(phi, dtype=np.float64)
    mass = invariant_mass(q)
    x, y, z = collins_soper_axes(q, p_beam, p_target)
    s = np.sqrt(np.clip(1.0 - c * c, 0.0, None))
    direction = (s * np.cos(p))[..., None] * x + (s * np.sin(p))[..., None] * y + c[..., None] * z
    pstar = np.sqrt(np.clip(0.25 * mass * mass - m_lepton**2, 0.0, None))
    rest = np.empty(q.shape)
    rest[..., 0] = 0.5 * mass
    rest[..., 1:] = pstar[..., None] * direction
    back = -q[..., 1:] / q[..., :1]  # the lab moves with -β as seen from the rest frame
    l_plus = boost(rest, back)
    rest[..., 1:] *= -1.0
    l_minus = boost(rest, back)
    return l_plus, l_minus


def dilepton_observables(
    l_plus: ArrayLike, l_minus: ArrayLike, p_beam: ArrayLike, p_target: ArrayLike
) -> dict[str, NDArray]:
    r"""The dilepton observables from lab four-momenta.

    Returns a dict of arrays with shape (*,): ``mass`` (GeV), ``pT`` (GeV),
    ``xF`` = 2p*_z / (√s (1 - M²/s)) with p*_z in the hadron centre-of-mass frame,
    ``x1`` = q·P2 / P1·P2 and ``x2`` = q·P1 / P1·P2 (beam and target momentum
    fractions), and the Collins-Soper ``costh`` and ``phi`` (rad).
    """
    l_plus = np.asarray(l_plus, dtype=np.float64)
    l_minus = np.asarray(l_minus, dtype=np.float64)
    p_beam = np.asarray(p_beam, dtype=np.float64)
    p_target = np.asarray(p_target, dtype=np.float64)
    q = l_plus + l_minus
    total = p_beam + p_target
    s = minkowski_dot(total, total)
    mass = invariant_mass(q)
    q_cm = boost(q, total[1:] / total[0])
    p1p2 = minkowski_dot(p_beam, p_target)
    costh, phi = collins_soper_angles(l_plus, l_minus, p_beam, p_target)
    return {
        "mass": mass,
        "pT": np.hypot(q[..., 1], q[..., 2]),
        "xF": 2.0 * q_cm[..., 3] / (np.sqrt(s) * (1.0 - mass * mass / s)),
        "x1": minkowski_dot(q, p_target) / p1p2,
        "x2": minkowski_dot(q, p_beam) / p1p2,
        "costh": costh,
        "phi": phi,
    }
