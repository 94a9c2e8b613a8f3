r"""Angular (cosθ, φ) and kinematic bins for the binned fits, and the exact bin integrals
of the angular density's basis.

The detector-level angles are histogrammed in bins j = (cosθ, φ), optionally within
kinematic bins m (mass, pT, xF). :func:`bin_integrals` gives B_jk = ∫_bin b_k dΩ of
the basis b = (1, cos²θ, sin2θ cosφ, ½ sin²θ cos2φ) of the Collins–Soper density
(1 + λcos²θ + μ sin2θ cosφ + ½ν sin²θ cos2φ; Lam–Tung, Phys. Rev. D 21 (1980) 2712),
in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dyfit.data.events import EventTable
from dyfit.errors import InputError

__all__ = ["KINEMATIC", "Binning", "parse_bins", "bin_integrals", "bin_sums"]

KINEMATIC = ("mass", "pT", "xF")


@dataclass
class Binning:
    """Bin edges: cosθ (in [-1, 1]), φ (rad, in [-π, π]) and kinematic columns → edges."""

    costh: NDArray = field(default_factory=lambda: np.linspace(-1.0, 1.0, 21))
    phi: NDArray = field(default_factory=lambda: np.linspace(-np.pi, np.pi, 13))
    kinematic: dict[str, NDArray] = field(default_factory=dict)

    @property
    def n_angular(self) -> int:
        return (len(self.costh) - 1) * (len(self.phi) - 1)

    @property
    def n_groups(self) -> int:
        return int(np.prod([len(e) - 1 for e in self.kinematic.values()], dtype=int))

    def describe(self) -> dict[str, list[float]]:
        return {"costh": list(map(float, self.costh)), "phi": list(map(float, self.phi))} | {
            k: list(map(float, v)) for k, v in self.kinematic.items()
        }

    def angular_index(self, costh: ArrayLike, phi: ArrayLike) -> NDArray[np.int64]:
        """The angular bin of each event, shape (N,); -1 outside the edges."""
        ic = _digitize(costh, self.costh)
        ip = _digitize(phi, self.phi)
        return np.where((ic < 0) | (ip < 0), -1, ic * (len(self.phi) - 1) + ip)

    def group_index(self, events: EventTable) -> NDArray[np.int64]:
        """The kinematic bin of each event (detector level), shape (N,); -1 outside."""
        group = np.zeros(len(events), dtype=np.int64)
        for name, edges in self.kinematic.items():
            k = _digitize(events[name], edges)
            group = np.where((group < 0) | (k < 0), -1, group * (len(edges) - 1) + k)
        return group


def _digitize(x: ArrayLike, edges: NDArray) -> NDArray[np.int64]:
    """Bin index in [0, len(edges) - 1), the last edge included; -1 outside."""
    x = np.asarray(x, dtype=np.float64)
    i = np.searchsorted(edges, x, side="right") - 1
    i = np.where(x == edges[-1], len(edges) - 2, i)
    return np.where((i < 0) | (i >= len(edges) - 1), -1, i)


def parse_bins(text: str | None, nominal: EventTable | None = None) -> Binning:
    """A :class:`Binning` from ``"costh=20,phi=12,mass=3,xF=0:0.3:0.6:0.95"``.

    A count gives equal-width bins over [-1, 1] (cosθ) or [-π, π] (φ), and for a
    kinematic column bins of equal population in ``nominal``; colon-separated numbers
    are the edges. Omitted angles keep the default 20 × 12 bins.
    """
    binning = Binning()
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or name not in ("costh", "phi", *KINEMATIC):
            raise InputError(
                f"cannot parse bins entry {part!r}; write NAME=COUNT or NAME=E0:E1:..., "
                f"NAME one of costh, phi, {', '.join(KINEMATIC)}"
            )
        try:
            numbers = [float(v) for v in value.split(":")]
        except ValueError:
            raise InputError(f"bins entry {part!r} is not a count or edges") from None
        if len(numbers) == 1:
            n = int(numbers[0])
            if n != numbers[0] or n < 1:
                raise InputError(f"bins entry {part!r}: give a positive whole number of bins")
            if name in KINEMATIC:
                if nominal is None or name not in nominal:
                    raise InputError(f"{name}={n} needs a nominal sample with column {name}")
                edges = np.quantile(
                    np.asarray(nominal[name], dtype=np.float64), np.linspace(0, 1, n + 1)
                )
            else:
                lim = 1.0 if name == "costh" else np.pi
                edges = np.linspace(-lim, lim, n + 1)
        else:
            edges = np.array(numbers)
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise InputError(f"bins entry {part!r}: edges must increase")
        if name in KINEMATIC:
            binning.kinematic[name] = edges
        else:
            lim = 1.0 if name == "costh" else np.pi
            if edges[0] < -lim - 1e-12 or edges[-1] > lim + 1e-12:
                raise InputError(f"bins entry {part!r}: {name} edges lie in [-{lim:g}, {lim:g}]")
            setattr(binning, name, edges)
    return binning


def bin_integrals(binning: Binning) -> NDArray[np.float64]:
    r"""B_jk = ∫_bin j b_k dΩ, exactly, with b = (1, c², sin2θ cosφ, ½ sin²θ cos2φ); (J, 4).

    Each b_k factorises into g_k(cosθ) h_k(φ), whose primitives are
    (c, c³/3, −⅔(1 − c²)^{3/2}, ½(c − c³/3)) and (φ, φ, sinφ, ½ sin2φ).
    """
    c = np.clip(binning.costh, -1.0, 1.0)
    p = binning.phi
    g = np.stack([c, c**3 / 3, -2.0 / 3.0 * (1 - c * c) ** 1.5, 0.5 * (c - c**3 / 3)], -1)
    h = np.stack([p, p, np.sin(p), 0.5 * np.sin(2 * p)], -1)
    dg, dh = np.diff(g, axis=0), np.diff(h, axis=0)  # (n_cos, 4), (n_phi, 4)
    return (dg[:, None, :] * dh[None, :, :]).reshape(-1, 4)


def bin_sums(index: NDArray, n_bins: int, values: NDArray) -> NDArray:
    """Σ of ``values`` (N, *S) per bin, shape (n_bins, *S); events with index -1 skipped."""
    ok = index >= 0
    flat = values[ok].reshape(int(ok.sum()), -1)
    out = np.stack(
        [np.bincount(index[ok], flat[:, k], minlength=n_bins) for k in range(flat.shape[1])], -1
    )
    return out.reshape((n_bins,) + values.shape[1:])
