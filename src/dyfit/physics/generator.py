r"""A leading-order Drell-Yan generator for a fixed target: truth-level μ⁺μ⁻ events.

**(M, xF).** At leading order q q̄ → γ* → μ⁺μ⁻ (Drell & Yan, PRL 25 (1970) 316;
the textbook form e.g. in Peng & Qiu, arXiv:1401.0934, eq. 2),

    d²σ/dM² dy = 4πα² / (9 M² s) · Σ_q e_q² [q(x1) q̄(x2) + q̄(x1) q(x2)],

with number densities q(x) at Q² = M² (x1 beam, x2 target), colour factor 1/3
included, and x1,2 = √τ e^{±y}, τ = M²/s. With p*_z the dilepton momentum along
the beam in the hadron centre of mass at pT = 0, E* = √(M² + p*_z²) and
x1,2 = (E* ± p*_z)/√s. This package defines xF = 2p*_z / (√s (1 - τ)) (the
maximum of p*_z at pT = 0 is √s(1 - τ)/2), so with y = asinh(p*_z/M)

    dy/dxF = √s (1 - τ) / (2E*) = (1 - τ) / (x1 + x2),

and, writing F_q = x·q (the tabulated x·f) and x1x2 = τ,

    d²σ/dM dxF = 2M · dy/dxF · d²σ/dM² dy
               = 8πα² (1 - τ) / (9 M³ (x1 + x2)) · Σ_q e_q² [F_q(x1) F_q̄(x2) + F_q̄(x1) F_q(x2)].

This is the formula of the reference (8πα²/9M³) x1x2/(x1 + x2) Σ e_q² q q̄ times
(1 - τ), the Jacobian of the exact xF against the approximation xF ≈ x1 - x2.
It is sampled exactly by accept-reject: the proposal is piecewise constant on
cells of (M, xF), each at the maximum of the density over a sub-grid of the cell
times a safety factor; a lower bound made the same way (Marsaglia's squeeze)
accepts three proposals in four without evaluating the PDFs. A density found
outside its cell's bounds raises rather than bias the sample.

**pT.** dσ/dpT² ∝ (1 + pT²/p1²)⁻⁶ (Kaplan et al., PRL 40 (1978) 435) with
p1 = kaplan_p1 + kaplan_p1_slope |xF| (SeaQuest LH2 fit for M > 4.5 GeV), drawn
by inverting the CDF truncated at min(pt_max, the kinematic limit). M and p*_z
are kept, so xF stays as sampled; four-momentum conservation against a recoil
of mass ≥ 0 bounds pT² ≤ (1 - xF²)(√s(1 - τ)/2)². Truncating the conditional pT
law is the same as rejecting and redrawing pT, and leaves (M, xF) untouched.
The dilepton azimuth is uniform; the CM → lab boost is along the beam.

**Angles.** (cosθ, φ) in the Collins-Soper frame from
:func:`dyfit.physics.angular.sample_angles`, turned into lab four-momenta by
:func:`dyfit.physics.kinematics.leptons_from_collins_soper`. With a
:class:`~dyfit.physics.curves.ThetaCurve` each event's θ comes from its own truth
(M, pT, xF, x1, x2), drawn before its angles.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import Field, model_validator

from dyfit.config import StrictModel
from dyfit.data.columns import THETA_COLUMNS, TRUTH_LEPTON_COLUMNS
from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.physics.angular import THETA0, as_theta, sample_angles
from dyfit.physics.curves import ThetaCurve
from dyfit.physics.kinematics import (
    M_PROTON,
    beam_target,
    leptons_from_collins_soper,
    minkowski_dot,
)
from dyfit.physics.pdf import PartonDistributions, cteq5l

__all__ = [
    "GeneratorConfig",
    "lo_cross_section",
    "integrated_cross_section",
    "generate_truth",
]

ALPHA_EM = 1.0 / 137.035999  # the Thomson limit, the usual choice at LO
GEV2_TO_NB = 0.3893794e6  # (ħc)² in GeV² nb
PDF_NAME = "CTEQ5L (hep-ph/9903282)"
# Events per pass: temporaries of this size stay in cache (measured fastest of 2^14..2^18).
CHUNK = 1 << 16


class GeneratorConfig(StrictModel):
    """The LO Drell-Yan generator's settings; energies and masses in GeV."""

    beam_energy: float = Field(120.0, gt=0.0)
    target: Literal["p", "d"] = "p"
    mass_range: tuple[float, float] = (4.0, 10.0)
    xf_range: tuple[float, float] = (-0.3, 0.99)
    kaplan_p1: float = 2.41
    kaplan_p1_slope: float = -0.77
    pt_max: float = Field(5.0, gt=0.0)

    @model_validator(mode="after")
    def _check_ranges(self) -> GeneratorConfig:
        m_lo, m_hi = self.mass_range
        if not 0.0 < m_lo < m_hi:
            raise ValueError(f"mass_range must satisfy 0 < low < high, got {self.mass_range}")
        s = 2.0 * M_PROTON * (self.beam_energy + M_PROTON)
        if m_hi**2 >= s:
            raise ValueError(f"mass_range reaches {m_hi} GeV, above sqrt(s) = {np.sqrt(s):.3f} GeV")
        x_lo, x_hi = self.xf_range
        if not -1.0 < x_lo < x_hi < 1.0:
            raise ValueError(f"xf_range must satisfy -1 < low < high < 1, got {self.xf_range}")
        # p1 is linear in |xF|, so its extremes over the range sit at the ends or at xF = 0.
        abs_xf = [abs(x_lo), abs(x_hi)] + ([0.0] if x_lo < 0.0 < x_hi else [])
        if min(self.kaplan_p1 + self.kaplan_p1_slope * a for a in abs_xf) <= 0.0:
            raise ValueError("kaplan_p1 + kaplan_p1_slope*|xF| must stay > 0 over xf_range")
        return self


class _Sampler:
    """Everything about one config that does not change from event to event."""

    N_MASS, N_XF, SUBDIVIDE, SAFETY = 48, 96, 4, 1.02

    def __init__(self, config: GeneratorConfig, pdf: PartonDistributions) -> None:
        self.config = config
        self.pdf = pdf
        self.p_beam, self.p_target = beam_target(config.beam_energy)
        total = self.p_beam + self.p_target
        self.s = float(minkowski_dot(total, total))
        self.sqrt_s = np.sqrt(self.s)
        self.beta_cm = total[3] / total[0]
        self.gamma_cm = 1.0 / np.sqrt(1.0 - self.beta_cm**2)
        # W[f, g] = e_q² when (f, g) is a (q, q̄) or (q̄, q) pair: Σ_fg B_f W_fg T_g is the
        # luminosity sum of the cross-section.
        col = {f: j for j, f in enumerate(pdf.flavours)}
        self.lumi = np.zeros((len(col), len(col)))
        for q, charge2 in ((1, 1 / 9), (2, 4 / 9), (3, 1 / 9), (4, 4 / 9)):
            self.lumi[col[q], col[-q]] = self.lumi[col[-q], col[q]] = charge2

        # Cells geometric in M (the density falls like a power of M), uniform in xF.
        m_edges = np.geomspace(*config.mass_range, self.N_MASS + 1)
        x_edges = np.linspace(*config.xf_range, self.N_XF + 1)
        k = self.SUBDIVIDE
        m_nodes = np.interp(np.arange(k * self.N_MASS + 1) / k, np.arange(m_edges.size), m_edges)
        x_nodes = np.interp(np.arange(k * self.N_XF + 1) / k, np.arange(x_edges.size), x_edges)
        mm, xx = np.meshgrid(m_nodes, x_nodes, indexing="ij")
        dens = self.density(mm.ravel(), xx.ravel()).reshape(mm.shape)
        # The trapezoid rule on the node grid: the cross-section, to ~1e-4.
        self.sigma_nb = float(np.trapezoid(np.trapezoid(dens, x_nodes, axis=1), m_nodes))
        # Each cell's extremes over its (k+1)² nodes, widened by SAFETY: the upper bound of
        # the accept-reject and the lower one of Marsaglia's squeeze, which accepts without
        # evaluating the PDFs (most proposals). Both are checked on every evaluated proposal.
        win = np.lib.stride_tricks.sliding_window_view(dens, (k + 1, k + 1))[::k, ::k]
        self.bound = (self.SAFETY * win.max(axis=(-2, -1))).ravel()  # (N_MASS·N_XF,)
        self.squeeze = (win.min(axis=(-2, -1)) / self.SAFETY).ravel()
        self.m_lo, self.dm = m_edges[:-1], np.diff(m_edges)
        self.x_lo, self.dx = x_edges[:-1], np.diff(x_edges)
        volume = self.bound * np.outer(self.dm, self.dx).ravel()
        self.cumulative = np.cumsum(volume)
        self.acceptance = self.sigma_nb / self.cumulative[-1]

    def density(self, mass: NDArray, xf: NDArray) -> NDArray:
        """d²σ/dM dxF per target nucleon in nb/GeV, at pT integrated; shapes (N,)."""
        tau = mass * mass / self.s
        pz = 0.5 * self.sqrt_s * (1.0 - tau) * xf
        energy = np.sqrt(mass * mass + pz * pz)
        x1 = (energy + pz) / self.sqrt_s
        x2 = (energy - pz) / self.sqrt_s
        q2 = mass * mass
        beam = self.pdf.xf_all(x1, q2, "p")
        target = self.pdf.xf_all(x2, q2, self.config.target)
        lumi = np.einsum("nf,nf->n", beam @ self.lumi, target)
        return (
            (8.0 * np.pi * ALPHA_EM**2 / 9.0 * GEV2_TO_NB)
            * (1.0 - tau)
            * lumi
            / (mass**3 * (x1 + x2))
        )

    def sample_mass_xf(self, n: int, rng: np.random.Generator) -> tuple[NDArray, NDArray]:
        """n exact draws of (M, xF) from :meth:`density` by accept-reject."""
        mass = np.empty(n)
        xf = np.empty(n)
        filled = 0
        while filled < n:
            # Overdraw by the expected acceptance so that one pass almost always suffices.
            batch = int((n - filled) / self.acceptance * 1.05) + 64
            cell = np.searchsorted(self.cumulative, rng.random(batch) * self.cumulative[-1])
            cell = np.minimum(cell, self.bound.size - 1)
            im, ix = np.divmod(cell, self.N_XF)
            m = self.m_lo[im] + self.dm[im] * rng.random(batch)
            x = self.x_lo[ix] + self.dx[ix] * rng.random(batch)
            u = rng.random(batch) * self.bound[cell]
            accept = u < self.squeeze[cell]
            look = np.flatnonzero(~accept)
            dens = self.density(m[look], x[look])
            if np.any(dens > self.bound[cell[look]]) or np.any(dens < self.squeeze[cell[look]]):
                raise RuntimeError(
                    "LO Drell-Yan density outside its accept-reject bounds; the sample would "
                    "not be exact. Raise _Sampler.SAFETY or SUBDIVIDE (a dyfit bug)."
                )
            accept[look] = u[look] < dens
            ok = np.flatnonzero(accept)[: n - filled]
            mass[filled : filled + ok.size] = m[ok]
            xf[filled : filled + ok.size] = x[ok]
            filled += ok.size
        return mass, xf

    def dilepton(self, mass: NDArray, xf: NDArray, rng: np.random.Generator) -> NDArray:
        """Lab four-momenta (E, px, py, pz) of the dileptons, shape (N, 4); adds pT, azimuth."""
        c = self.config
        tau = mass * mass / self.s
        p_max = 0.5 * self.sqrt_s * (1.0 - tau)
        pz = p_max * xf
        p1sq = (c.kaplan_p1 + c.kaplan_p1_slope * np.abs(xf)) ** 2
        pt2_max = np.minimum(c.pt_max**2, (1.0 - xf * xf) * p_max * p_max)
        # CDF of pT² for (1 + pT²/p1²)⁻⁶ dpT² is 1 - (1 + pT²/p1²)⁻⁵; invert it on [0, pt2_max].
        cdf_max = -np.expm1(-5.0 * np.log1p(pt2_max / p1sq))
        u = rng.random(mass.size) * cdf_max
        pt = np.sqrt(p1sq * np.expm1(-np.log1p(-u) / 5.0))
        azimuth = rng.uniform(-np.pi, np.pi, mass.size)
        energy = np.sqrt(mass * mass + pt * pt + pz * pz)
        q = np.empty((mass.size, 4))
        q[:, 0] = self.gamma_cm * (energy + self.beta_cm * pz)
        q[:, 1] = pt * np.cos(azimuth)
        q[:, 2] = pt * np.sin(azimuth)
        q[:, 3] = self.gamma_cm * (pz + self.beta_cm * energy)
        return q


@functools.lru_cache(maxsize=16)
def _sampler(config: GeneratorConfig) -> _Sampler:
    try:
        return _Sampler(config, cteq5l())
    except InputError as err:
        raise InputError(f"generator config {config.model_dump()}: {err}") from None


def lo_cross_section(
    mass: ArrayLike, xf: ArrayLike, config: GeneratorConfig | None = None
) -> NDArray:
    r"""The LO d²σ/dM dxF per target nucleon in nb/GeV, integrated over pT.

    Arguments:
        mass: Dilepton masses M in GeV, with shape (N,).
        xf: Feynman x, with shape (N,).
        config: The beam energy and target (ranges are not applied); default GeneratorConfig().
    """
    m, x = np.broadcast_arrays(np.asarray(mass, np.float64), np.asarray(xf, np.float64))
    out = _sampler(config or GeneratorConfig()).density(m.ravel(), x.ravel())
    return out.reshape(m.shape)


def integrated_cross_section(config: GeneratorConfig | None = None) -> float:
    """σ per target nucleon in nb over the config's mass and xF ranges, at leading order."""
    return _sampler(config or GeneratorConfig()).sigma_nb


def generate_truth(
    n: int,
    theta: ArrayLike | ThetaCurve,
    config: GeneratorConfig | None = None,
    rng: np.random.Generator | None = None,
) -> EventTable:
    r"""Exactly n leading-order Drell-Yan events at generator (truth) level.

    Arguments:
        n: The number of events.
        theta: (λ, μ, ν) with shape (3,), one θ per event with shape (n, 3), or a
            :class:`~dyfit.physics.curves.ThetaCurve` of the event's truth kinematics.
        config: The generator settings; default GeneratorConfig().
        rng: The random generator (required for reproducible output).

    Returns:
        An EventTable with the lab four-momenta ``true_mup_*``, ``true_mum_*`` (GeV),
        ``true_mass``, ``true_pT`` (GeV), ``true_xF``, ``true_x1``, ``true_x2``
        (four-vector products), ``true_costh``, ``true_phi`` (rad, Collins-Soper,
        μ⁺) and ``theta_lambda``, ``theta_mu``, ``theta_nu``.
    """
    config = config or GeneratorConfig()
    if not isinstance(rng, np.random.Generator):
        raise InputError("generate_truth needs rng=np.random.Generator (np.random.default_rng)")
    if int(n) != n or n < 0:
        raise InputError(f"the number of events must be a non-negative integer, got {n}")
    n = int(n)
    curve = theta if isinstance(theta, ThetaCurve) else None
    t = as_theta(THETA0 if curve else theta)  # with a curve, only for the chunk sizes
    if t.ndim == 2 and t.shape[0] != n:
        raise InputError(f"per-event theta has {t.shape[0]} rows for n = {n} events")
    per_event = np.broadcast_to(t, (n, 3))
    sampler = _sampler(config)
    # x1 = q·P2 / P1·P2 and x2 = q·P1 / P1·P2 as in dilepton_observables, as one matvec each.
    metric = np.array([1.0, -1.0, -1.0, -1.0]) / minkowski_dot(sampler.p_beam, sampler.p_target)
    dimuon = ("mass", "pT", "xF", "x1", "x2", "costh", "phi")
    names = [*TRUTH_LEPTON_COLUMNS, *(f"true_{c}" for c in dimuon), *THETA_COLUMNS]
    columns = {name: np.empty(n) for name in names}
    for start in range(0, n, CHUNK):
        th = per_event[start : start + CHUNK]
        size = th.shape[0]
        mass, xf = sampler.sample_mass_xf(size, rng)
        q = sampler.dilepton(mass, xf, rng)
        if curve is not None:
            # x1 = q·P2 / P1·P2, x2 = q·P1 / P1·P2, as in the columns below (pair = q)
            th = curve.theta_for(
                {
                    "mass": mass,
                    "pT": np.hypot(q[:, 1], q[:, 2]),
                    "xF": xf,
                    "x1": q @ (metric * sampler.p_target),
                    "x2": q @ (metric * sampler.p_beam),
                }
            )
        costh, phi = sample_angles(th if t.ndim == 2 or curve is not None else t, size, rng)
        l_plus, l_minus = leptons_from_collins_soper(
            q, costh, phi, sampler.p_beam, sampler.p_target
        )
        pair = l_plus + l_minus
        values = [*l_plus.T, *l_minus.T, mass, np.hypot(q[:, 1], q[:, 2]), xf]
        values += [
            pair @ (metric * sampler.p_target),
            pair @ (metric * sampler.p_beam),
            costh,
            phi,
            *th.T,
        ]
        for column, value in zip(columns.values(), values, strict=True):
            column[start : start + size] = value
    meta = {
        "generator": "dyfit-lo",
        "generator_config": config.model_dump(),
        "pdf": PDF_NAME,
        "cross_section_nb": sampler.sigma_nb,
    }
    if curve is not None:
        meta["theta_curve"] = curve.model_dump(mode="json", by_alias=True, exclude_none=True)
    return EventTable(columns, meta)
