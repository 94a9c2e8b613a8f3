r"""The Drell-Yan lepton angular distribution in the Collins-Soper frame.

.. math::

    \frac{dσ}{dΩ} ∝ 1 + λ\cos^2θ + μ\sin 2θ\cosφ + \frac{ν}{2}\sin^2θ\cos 2φ

θ = (λ, μ, ν); the nominal leading-order value is θ0 = (1, 0, 0). Writing the
lepton direction as a unit vector n = (sinθcosφ, sinθsinφ, cosθ), the density is
the quadratic form nᵀA(θ)n with

    A = I + [[ν/2, 0, μ], [0, -ν/2, 0], [μ, 0, λ]],

so ∫dΩ = (4π/3) tr A = 4π(1 + λ/3), and the density is non-negative on the whole
sphere exactly when the smallest eigenvalue of A is ≥ 0.

Because the density is linear in θ, any ratio to the nominal is a linear
combination of four basis weights a_k(cosθ, φ) (see :func:`angular_basis`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.errors import InputError

__all__ = [
    "THETA_NAMES",
    "THETA0",
    "as_theta",
    "angular_density",
    "angular_norm",
    "normalised_density",
    "angular_weight",
    "angular_basis",
    "basis_coefficients",
    "density_matrix",
    "min_density_eigenvalue",
    "is_physical",
    "check_physical",
    "sample_angles",
]

THETA_NAMES = ("lambda", "mu", "nu")
THETA0 = np.array([1.0, 0.0, 0.0])


def as_theta(theta: ArrayLike) -> NDArray[np.float64]:
    r"""θ as a float array with shape (3,) or (N, 3); raises InputError otherwise."""
    arr = np.asarray(theta, dtype=np.float64)
    if arr.shape[-1:] != (3,) or arr.ndim > 2:
        raise InputError(f"theta must have 3 components (lambda, mu, nu), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("theta holds NaN or inf; give finite (lambda, mu, nu)")
    return arr


def angular_density(costh: ArrayLike, phi: ArrayLike, theta: ArrayLike) -> NDArray:
    r"""The unnormalised density 1 + λc² + μ sin2θ cosφ + (ν/2) sin²θ cos2φ.

    Arguments:
        costh: cosθ, with shape (N,).
        phi: φ in rad, with shape (N,).
        theta: (λ, μ, ν), with shape (3,) or (N, 3).

    Returns:
        The density, with shape (N,).
    """
    c = np.asarray(costh, dtype=np.float64)
    p = np.asarray(phi, dtype=np.float64)
    lam, mu, nu = np.moveaxis(as_theta(theta), -1, 0)
    sin2 = 1.0 - c * c
    sin2theta = 2.0 * c * np.sqrt(np.clip(sin2, 0.0, None))
    return 1.0 + lam * c * c + mu * sin2theta * np.cos(p) + 0.5 * nu * sin2 * np.cos(2.0 * p)


def angular_norm(theta: ArrayLike) -> NDArray:
    r"""∫dΩ of the unnormalised density, 4π(1 + λ/3); shape (*,) for θ of shape (*, 3)."""
    return 4.0 * np.pi * (1.0 + as_theta(theta)[..., 0] / 3.0)


def normalised_density(costh: ArrayLike, phi: ArrayLike, theta: ArrayLike) -> NDArray:
    r"""The probability density in dΩ = dcosθ dφ, integrating to one over the sphere."""
    return angular_density(costh, phi, theta) / angular_norm(theta)


def angular_weight(
    costh: ArrayLike, phi: ArrayLike, theta: ArrayLike, theta_ref: ArrayLike = THETA0
) -> NDArray:
    r"""Exact per-event weight p(Ω|θ) / p(Ω|θ_ref) between normalised densities.

    A sample drawn at θ_ref and weighted by this reproduces a sample drawn at θ;
    the weights average to one over the θ_ref sample.
    """
    return normalised_density(costh, phi, theta) / normalised_density(costh, phi, theta_ref)


def angular_basis(costh: ArrayLike, phi: ArrayLike) -> NDArray:
    r"""The truth-level basis weights a_k = b_k / (1 + cos²θ), shape (N, 4).

    b = (1, cos²θ, sin2θ cosφ, ½ sin²θ cos2φ), so that the unnormalised weight
    f(Ω|θ)/f(Ω|θ0) equals a·(1, λ, μ, ν). Their means over a nominal sample,
    ā_k, give the normalisation: E_0[a·(1, λ, μ, ν)] = (1 + λ/3)/(1 + 1/3).
    """
    c = np.asarray(costh, dtype=np.float64)
    p = np.asarray(phi, dtype=np.float64)
    sin2 = 1.0 - c * c
    b = np.stack(
        [
            np.ones_like(c),
            c * c,
            2.0 * c * np.sqrt(np.clip(sin2, 0.0, None)) * np.cos(p),
            0.5 * sin2 * np.cos(2.0 * p),
        ],
        axis=-1,
    )
    return b / (1.0 + c * c)[..., None]


def basis_coefficients(theta: ArrayLike) -> NDArray:
    r"""The vector (1, λ, μ, ν) that contracts with :func:`angular_basis`; shape (*, 4)."""
    t = as_theta(theta)
    return np.concatenate([np.ones(t.shape[:-1] + (1,)), t], axis=-1)


def density_matrix(theta: ArrayLike) -> NDArray:
    r"""The symmetric matrix A(θ) with density nᵀAn; shape (*, 3, 3)."""
    t = as_theta(theta)
    a = np.zeros(t.shape[:-1] + (3, 3))
    a[..., 0, 0] = 1.0 + 0.5 * t[..., 2]
    a[..., 1, 1] = 1.0 - 0.5 * t[..., 2]
    a[..., 2, 2] = 1.0 + t[..., 0]
    a[..., 0, 2] = a[..., 2, 0] = t[..., 1]
    return a


def min_density_eigenvalue(theta: ArrayLike) -> NDArray:
    r"""The minimum of the unnormalised density over the sphere, min_n nᵀAn."""
    return np.linalg.eigvalsh(density_matrix(theta))[..., 0]


def is_physical(theta: ArrayLike) -> NDArray[np.bool_]:
    r"""True where the angular density is non-negative over the whole sphere."""
    return min_density_eigenvalue(theta) >= 0.0


def check_physical(theta: ArrayLike) -> NDArray[np.float64]:
    r"""Return θ as an array, or raise InputError if its density turns negative."""
    t = as_theta(theta)
    bad = ~is_physical(t)
    if np.any(bad):
        first = np.atleast_2d(t)[np.atleast_1d(bad)][0]
        raise InputError(
            "theta = (lambda={:g}, mu={:g}, nu={:g}) gives a negative angular density "
            "somewhere on the sphere; choose coefficients with 1 + lambda*cos^2 + ... >= 0".format(
                *first
            )
        )
    return t


def sample_angles(
    theta: ArrayLike, size: int | None, rng: np.random.Generator
) -> tuple[NDArray, NDArray]:
    r"""Draw (cosθ, φ) from the normalised density, exactly, by accept-reject.

    The proposal is uniform on the sphere and the bound is 1 + |λ| + |μ| + |ν|/2,
    which majorises every term of the density.

    Arguments:
        theta: (λ, μ, ν) with shape (3,) for a fixed θ, or (N, 3) for one θ per event.
        size: The number of events for a fixed θ; ignored (may be None) for per-event θ.
        rng: The random generator.

    Returns:
        cosθ and φ ∈ (-π, π], each with shape (N,).
    """
    t = check_physical(theta)
    if t.ndim == 1:
        if size is None or size < 0:
            raise InputError("sample_angles needs a non-negative size for a fixed theta")
        t = np.broadcast_to(t, (size, 3))
    n = t.shape[0]
    bound = 1.0 + np.abs(t[:, 0]) + np.abs(t[:, 1]) + 0.5 * np.abs(t[:, 2])
    costh = np.empty(n)
    phi = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        c = rng.uniform(-1.0, 1.0, todo.size)
        p = rng.uniform(-np.pi, np.pi, todo.size)
        u = rng.uniform(0.0, 1.0, todo.size) * bound[todo]
        ok = u < angular_density(c, p, t[todo])
        costh[todo[ok]] = c[ok]
        phi[todo[ok]] = p[ok]
        todo = todo[~ok]
    return costh, phi
