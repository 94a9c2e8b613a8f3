r"""Leading-order parton distributions of the nucleon, from a shipped CTEQ5L table.

CTEQ5L (Lai et al., Eur. Phys. J. C12 (2000) 375, hep-ph/9903282) x·f(x, Q²) of
the proton for d, u, s, c, their antiquarks and the gluon, tabulated from
Pythia 8 by ``scripts/make_pdf_table.py`` on a grid uniform in logit x =
ln(x/(1-x)) (1e-3 ≤ x ≤ 0.999) and in ln Q² ((3 GeV)² ≤ Q² ≤ (12 GeV)²).

Interpolation is bilinear in (logit x, ln Q²) of ln x·f: near x → 1 the
distributions fall like powers of 1 - x and at small x like powers of x, both
straight lines in these variables, so the error stays below 0.5 % over the
table (checked against Pythia in ``tests/test_pdf.py``). Above the last x node
the last segment is extrapolated, a power law in 1 - x that vanishes at x = 1;
x·f = 0 for x ≥ 1.

Nuclear targets are built per nucleon from isospin symmetry (the neutron has
u_n = d_p, d_n = u_p, ū_n = d̄_p, d̄_n = ū_p; s, c and g unchanged) without
nuclear corrections: the deuteron is (p + n)/2. Because CTEQ5L has d̄ > ū at
x ≳ 0.05, a deuteron target raises the Drell-Yan yield at large x2 (the E866
and SeaQuest sea-asymmetry measurements rest on this).
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.errors import InputError

__all__ = ["QUARKS", "TARGETS", "PartonDistributions", "cteq5l"]

# The flavours a Drell-Yan cross-section needs, in the order the generator contracts them.
QUARKS = (1, 2, 3, 4, -1, -2, -3, -4)
TARGETS = ("p", "n", "d")
_ISOSPIN = {1: 2, 2: 1, -1: -2, -2: -1}


class PartonDistributions:
    r"""x·f(x, Q²) of a nucleon, interpolated from a proton table.

    Arguments:
        path: A ``.npz`` table with arrays ``x`` (nx,), ``q2`` (nq2,) in GeV²,
            ``xf`` (flavour, nx, nq2), ``flavours`` (PDG codes) and ``source``;
            default the shipped CTEQ5L table.

    Example:
        >>> pdf = cteq5l()
        >>> float(pdf.xf(2, 0.3, 25.0))  # x·u(x = 0.3, Q² = 25 GeV²) of the proton
        0.507...
    """

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            ref = importlib.resources.files("dyfit.physics") / "data" / "cteq5l.npz"
            with importlib.resources.as_file(ref) as p, np.load(p, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        else:
            try:
                with np.load(path, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
            except (OSError, ValueError) as err:
                raise InputError(f"cannot read PDF table {path}: {err}") from None
        missing = {"x", "q2", "xf", "flavours", "source"} - set(arrays)
        if missing:
            raise InputError(f"PDF table lacks array(s) {sorted(missing)}; remake it")
        self.x_nodes = arrays["x"].astype(np.float64)
        self.q2_nodes = arrays["q2"].astype(np.float64)
        self.flavours = tuple(int(f) for f in arrays["flavours"])
        self.source = str(arrays["source"][0])
        xf = arrays["xf"].astype(np.float64)
        if xf.shape != (len(self.flavours), self.x_nodes.size, self.q2_nodes.size):
            raise InputError(f"PDF table xf has shape {xf.shape}, inconsistent with its x/q2 nodes")
        if not np.all(xf > 0):
            raise InputError("PDF table holds x*f <= 0; the log interpolation needs x*f > 0")

        u = np.log(self.x_nodes) - np.log1p(-self.x_nodes)
        lq = np.log(self.q2_nodes)
        for name, nodes in (("logit x", u), ("ln Q^2", lq)):
            step = np.diff(nodes)
            if not np.allclose(step, step[0], rtol=1e-9, atol=0.0) or step[0] <= 0:
                raise InputError(f"PDF table nodes must be uniform and rising in {name}")
        self._u0, self._du = u[0], u[1] - u[0]
        self._lq0, self._dlq = lq[0], lq[1] - lq[0]
        self._nq = lq.size
        # Row (i·nq + k) holds ln x·f of every flavour at node (x_i, Q²_k): one gather
        # per corner fetches all flavours at once.
        self._log_xf = np.ascontiguousarray(np.log(xf).transpose(1, 2, 0).reshape(-1, xf.shape[0]))
        index = {f: j for j, f in enumerate(self.flavours)}
        self._neutron = np.array([index[_ISOSPIN.get(f, f)] for f in self.flavours])
        self._column = index

    def xf_all(self, x: ArrayLike, q2: ArrayLike, target: str = "p") -> NDArray:
        r"""x·f for every flavour in :attr:`flavours`, per nucleon of ``target``.

        Arguments:
            x: Momentum fractions, with shape (*,); 1e-3 ≤ x (x·f = 0 for x ≥ 1).
            q2: Scales Q² in GeV², broadcastable with x, inside the table range.
            target: ``"p"``, ``"n"`` or ``"d"`` (per nucleon, (p + n)/2).

        Returns:
            x·f, with shape (*, len(flavours)).
        """
        if target not in TARGETS:
            raise InputError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
        x, q2 = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(q2, np.float64))
        shape = x.shape
        x, q2 = x.ravel(), q2.ravel()
        self._check_range(x, q2)
        inside = x < 1.0
        xin = np.where(inside, x, 0.5)  # any finite stand-in; zeroed below
        logit = np.log(xin) - np.log1p(-xin)
        out = np.exp(self._interpolate_log(logit, np.log(q2)))
        out[~inside] = 0.0
        if target == "n":
            out = out[:, self._neutron]
        elif target == "d":
            out = 0.5 * (out + out[:, self._neutron])
        return out.reshape(shape + (len(self.flavours),))

    def xf(self, pdg_id: int, x: ArrayLike, q2: ArrayLike, target: str = "p") -> NDArray:
        r"""x·f(x, Q²) of one flavour (PDG code) per nucleon of ``target``, shape of x."""
        if pdg_id not in self._column:
            raise InputError(f"flavour {pdg_id} is not in the PDF table ({self.flavours})")
        return self.xf_all(x, q2, target)[..., self._column[pdg_id]]

    def number_densities(
        self, x: ArrayLike, q2: ArrayLike, target: str = "p"
    ) -> dict[int, NDArray]:
        r"""The number densities f(x, Q²) = (x·f)/x per nucleon of ``target``, by PDG code."""
        x = np.asarray(x, np.float64)
        xf = self.xf_all(x, q2, target)
        xb = np.broadcast_to(x, xf.shape[:-1])
        return {f: xf[..., j] / xb for j, f in enumerate(self.flavours)}

    def _check_range(self, x: NDArray, q2: NDArray) -> None:
        if x.size == 0:
            return
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(q2))):
            raise InputError("PDF asked at NaN or infinite x or Q^2")
        # Relative slack: grid edges recomputed from logit round off at 1e-16.
        if x.min() < self.x_nodes[0] * (1 - 1e-12):
            raise InputError(
                f"PDF asked at x = {x.min():.3g}, below the table's {self.x_nodes[0]:.3g}"
            )
        lo, hi = self.q2_nodes[0] * (1 - 1e-12), self.q2_nodes[-1] * (1 + 1e-12)
        if q2.min() < lo or q2.max() > hi:
            raise InputError(
                f"PDF asked at Q^2 in [{q2.min():.4g}, {q2.max():.4g}] GeV^2, outside the table's "
                f"[{self.q2_nodes[0]:.4g}, {self.q2_nodes[-1]:.4g}]; choose masses inside "
                f"[{np.sqrt(self.q2_nodes[0]):.3g}, {np.sqrt(self.q2_nodes[-1]):.3g}] GeV"
            )

    def _interpolate_log(self, logit: NDArray, log_q2: NDArray) -> NDArray:
        r"""Bilinear ln x·f at (logit x, ln Q²), both shape (N,); returns (N, flavour)."""
        fu = (logit - self._u0) / self._du
        fq = (log_q2 - self._lq0) / self._dlq
        nx = self.x_nodes.size
        # Clipping i to the last cell extrapolates beyond x_max (t_u > 1) as intended.
        i = np.clip(fu.astype(np.intp), 0, nx - 2)
        k = np.clip(fq.astype(np.intp), 0, self._nq - 2)
        tu = (fu - i)[:, None]
        tq = (fq - k)[:, None]
        base = i * self._nq + k
        t = self._log_xf
        low = t[base]
        low += tq * (t[base + 1] - low)
        high = t[base + self._nq]
        high += tq * (t[base + self._nq + 1] - high)
        low += tu * (high - low)
        return low


@functools.cache
def cteq5l() -> PartonDistributions:
    """The shipped CTEQ5L table, loaded once per process."""
    return PartonDistributions()
