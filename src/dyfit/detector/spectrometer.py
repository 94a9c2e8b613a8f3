r"""A fast simulation and reconstruction of a SeaQuest-like dimuon spectrometer.

Method (geometry and numbers in :class:`~dyfit.detector.config.SpectrometerConfig`,
after arXiv:1706.09990; transport in :mod:`dyfit.detector.propagation`, reconstruction in
:mod:`dyfit.detector.reconstruction`):

1. The vertex: z uniform over the target, x and y Gaussian (beam spot).
2. Both muons drift to FMAG and cross its iron in two halves: mean energy loss plus
   straggling, multiple scattering, and a thin pT kick at the mid-plane. Muons that stop,
   turn back or leave the iron's width are lost.
3. Drift to station 1, the KMAG kick (inside its aperture), stations 2 and 3, the iron
   absorber (muons below its energy loss stop) and station 4; each station's x/y window
   is checked at its z.
4. Trigger: μ+ and μ- with y at station 3 of opposite sign (one top, one bottom).
5. Tracking: at least ``min_hits`` firing planes in each of stations 1-3, positions smeared
   by resolution/√n_hits, momentum and charge from the KMAG bend (the charge must be
   right), then the track-quality windows at station 1.
6. Swim back through FMAG to the target-constrained vertex, and the analysis cuts.

Events are (μ+, μ-) pairs in arrays of shape (N, 2); every step is vectorised and
rejected events are dropped as soon as a stage fails, so later (costlier) steps see few.
With ``smearing=False`` multiple scattering, straggling and hit smearing are off while
acceptance, hit efficiency and the mean energy loss stay; reco then differs from truth only
through the vertex constraint (see :mod:`dyfit.detector.reconstruction`). Not modelled: the
beam-dump hole in FMAG, scattering and straggling in the absorber and air, fringe fields,
backgrounds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dyfit.data.columns import DIMUON_COLUMNS, FOUR_VECTOR_COLUMNS, TRUTH_LEPTON_COLUMNS
from dyfit.data.columns import truth as truth_name
from dyfit.data.events import EventTable
from dyfit.detector.config import SpectrometerConfig, StationConfig
from dyfit.detector.propagation import drift, fmag_mean_eloss, inside, thin_kick, traverse_fmag
from dyfit.detector.reconstruction import (
    count_hits,
    fit_kmag_tracks,
    measure_positions,
    vertex_momenta,
)
from dyfit.detector.summary import DetectorSummary
from dyfit.physics.kinematics import beam_target, dilepton_observables

__all__ = ["simulate_detector"]

CHARGE = np.array([1.0, -1.0])  # the (μ+, μ-) columns of every (N, 2) array
LEPTONS = ("mup", "mum")


class _Survivors:
    """Per-event arrays that shrink as stages reject events, and the counts after each."""

    def __init__(self, n: int, **arrays: NDArray) -> None:
        self.arrays = arrays
        self.counts = {"generated": n}

    def __getitem__(self, name: str) -> NDArray:
        return self.arrays[name]

    def update(self, **arrays: NDArray) -> None:
        self.arrays.update(arrays)

    def keep(self, stage: str, mask: NDArray[np.bool_]) -> None:
        """Keep events where ``mask`` holds (for both muons when it has shape (N, 2, ...))."""
        if mask.ndim > 1:
            mask = mask.all(axis=tuple(range(1, mask.ndim)))
        self.counts[stage] = int(np.count_nonzero(mask))
        if self.counts[stage] < len(mask):
            rows = np.flatnonzero(mask)  # one index array, then `take`: faster than masks
            self.arrays = {k: v.take(rows, axis=0) for k, v in self.arrays.items()}


def _window(value: NDArray, window: tuple[float, float]) -> NDArray[np.bool_]:
    return (value > window[0]) & (value < window[1])


def _to_station(
    ev: _Survivors, z_from: float, station: StationConfig, name: str, alive: NDArray | bool = True
) -> None:
    x, y = drift(ev["x"], ev["y"], ev["tx"], ev["ty"], station.z_cm - z_from)
    ev.update(x=x, y=y, **{f"x_{name}": x, f"y_{name}": y})
    ev.keep(name, inside(x, y, station.x_range_cm, station.y_range_cm) & alive)


def _transport(
    truth_leptons: NDArray, config: SpectrometerConfig, rng: np.random.Generator, smearing: bool
) -> _Survivors:
    """Vertex, FMAG, stations, KMAG, absorber and trigger for (N, 2, 4) truth leptons."""
    n = len(truth_leptons)
    tgt, fmag, kmag = config.target, config.fmag, config.kmag
    vz = tgt.z_center_cm + tgt.length_cm * (rng.random(n) - 0.5)
    vx = tgt.beam_sigma_x_cm * rng.standard_normal(n)
    vy = tgt.beam_sigma_y_cm * rng.standard_normal(n)
    px, py, pz = np.moveaxis(truth_leptons[..., 1:], -1, 0)
    p = np.sqrt(px * px + py * py + pz * pz)
    downstream = pz > 0.0
    pz = np.where(downstream, pz, 1.0)  # upstream muons are dropped below
    tx, ty = px / pz, py / pz
    x, y = drift(vx[:, None], vy[:, None], tx, ty, fmag.z_start_cm - vz[:, None])
    ev = _Survivors(n, index=np.arange(n), vx=vx, vy=vy, vz=vz, x=x, y=y, tx=tx, ty=ty, p=p)
    # Before drawing FMAG's random numbers, drop muons that cannot come out of it: going
    # upstream, entering beside the iron, or > 8σ of straggling short of its energy loss.
    short = p - fmag_mean_eloss(p, fmag) + 8.0 * fmag.straggling_GeV <= 0.0
    ev.keep("fmag", downstream & (np.abs(x) < fmag.half_width_cm) & ~short)
    x, y, tx, ty, p, ok = traverse_fmag(
        ev["x"], ev["y"], ev["tx"], ev["ty"], ev["p"], CHARGE, fmag, rng, smearing
    )
    ev.update(x=x, y=y, tx=tx, ty=ty, p=p)
    ev.keep("fmag", ok)

    _to_station(ev, fmag.z_end_cm, config.station1, "station1")
    x, y = drift(ev["x"], ev["y"], ev["tx"], ev["ty"], kmag.z_kick_cm - config.station1.z_cm)
    tx, ty, forward = thin_kick(ev["tx"], ev["ty"], ev["p"], CHARGE * kmag.signed_kick_GeV)
    ev.update(x=x, y=y, tx=tx, ty=ty)
    in_gap = (np.abs(x) < kmag.half_aperture_x_cm) & (np.abs(y) < kmag.half_aperture_y_cm)
    ev.keep("kmag", in_gap & forward)
    _to_station(ev, kmag.z_kick_cm, config.station2, "station2")
    _to_station(ev, config.station2.z_cm, config.station3, "station3")
    # Muons below the absorber's energy loss stop in it and never reach station 4.
    passes = ev["p"] > config.absorber.eloss_GeV
    _to_station(ev, config.station3.z_cm, config.station4, "station4", passes)
    y3 = ev["y_station3"]
    one_up_one_down = y3[:, 0] * y3[:, 1] < 0.0
    ev.keep("trigger", one_up_one_down | (not config.trigger_opposite_y_st3))
    return ev


def _reconstruct(
    ev: _Survivors, config: SpectrometerConfig, rng: np.random.Generator, smearing: bool
) -> NDArray:
    """Hits, KMAG tracking, quality and the pz-at-station-1 cut; returns (N, 2, 4) at the vertex."""
    names = ("station1", "station2", "station3")
    ev.update(n_hits=count_hits((len(ev["index"]), 3, 2), config.chambers, rng))
    ev.keep("tracking", ev["n_hits"] >= config.chambers.min_hits)
    x_true = np.stack([ev[f"x_{s}"] for s in names], axis=1)  # (N, 3, 2)
    y_true = np.stack([ev[f"y_{s}"] for s in names], axis=1)
    x, y = measure_positions(x_true, y_true, ev["n_hits"], config.chambers, rng, smearing)
    z = tuple(getattr(config, s).z_cm for s in names)
    tx, ty, inv_p, charge = fit_kmag_tracks(
        x, y, z, config.kmag.z_kick_cm, config.kmag.signed_kick_GeV
    )
    ev.update(x1=x[:, 0], y1=y[:, 0], tx1=tx, ty1=ty, inv_p=inv_p)
    ev.keep("tracking", charge == CHARGE)
    tx, ty, inv_p = ev["tx1"], ev["ty1"], ev["inv_p"]

    q = config.quality
    ev.keep(
        "quality",
        (np.abs(tx) < q.max_abs_tx) & (np.abs(ty) < q.max_abs_ty) & _window(inv_p, q.inv_p_per_GeV),
    )
    tx, ty, p1 = ev["tx1"], ev["ty1"], 1.0 / ev["inv_p"]
    ev.update(pz_st1=p1 / np.sqrt(1.0 + tx * tx + ty * ty))
    ev.keep("mu_pz_st1", _window(ev["pz_st1"], config.cuts.mu_pz_st1_GeV))
    return vertex_momenta(ev["x1"], ev["y1"], ev["tx1"], ev["ty1"], 1.0 / ev["inv_p"], config)


def _dimuon_cuts(ev: _Survivors, config: SpectrometerConfig, beam_energy: float) -> None:
    """The analysis cuts on the target-constrained dimuon, cheapest first."""
    cuts = config.cuts
    momentum_cuts = (
        ("dimuon_pz", lambda q: _window(q[:, 3], cuts.dimuon_pz_GeV)),
        ("dimuon_px", lambda q: np.abs(q[:, 1]) < cuts.dimuon_abs_px_max_GeV),
        ("dimuon_py", lambda q: np.abs(q[:, 2]) < cuts.dimuon_abs_py_max_GeV),
        ("dimuon_pT2", lambda q: q[:, 1] ** 2 + q[:, 2] ** 2 < cuts.dimuon_pT2_max_GeV2),
    )
    for stage, passes in momentum_cuts:
        ev.keep(stage, passes(ev["reco"].sum(axis=1)))
    reco = ev["reco"]
    obs = dilepton_observables(reco[:, 0], reco[:, 1], *beam_target(beam_energy))
    ev.update(**{f"reco_{k}": v for k, v in obs.items()})
    for stage, column, window in (
        ("xF", "reco_xF", cuts.xF),
        ("x2", "reco_x2", cuts.x2),
        ("mass", "reco_mass", cuts.mass_GeV),
    ):
        ev.keep(stage, _window(ev[column], window))


def _debug_columns(ev: _Survivors) -> dict[str, NDArray]:
    """Per-muon station quantities: true (x, y) at stations 1-4 (cm), hits, pz at station 1."""
    out = {}
    for i, lep in enumerate(LEPTONS):
        for k in range(1, 5):
            out[f"true_{lep}_x_st{k}"] = ev[f"x_station{k}"][:, i]
            out[f"true_{lep}_y_st{k}"] = ev[f"y_station{k}"][:, i]
        for k in range(1, 4):
            out[f"{lep}_nhits_st{k}"] = ev["n_hits"][:, k - 1, i]
        out[f"{lep}_pz_st1"] = ev["pz_st1"][:, i]
    return out


def simulate_detector(
    truth: EventTable,
    config: SpectrometerConfig,
    rng: np.random.Generator,
    *,
    beam_energy: float = 120.0,
    smearing: bool = True,
    debug: bool = False,
) -> tuple[EventTable, DetectorSummary]:
    r"""Pass truth dimuons through the spectrometer; keep and reconstruct the accepted ones.

    Arguments:
        truth: Events with the truth lepton four-momenta ``true_mup_E`` ... ``true_mum_pz``
            (GeV, lab frame, beam along +z); any other columns are carried along.
        config: The spectrometer.
        rng: The random generator (the same seed gives the same output).
        beam_energy: The beam energy (GeV) for xF, x1, x2 and the Collins-Soper frame.
        smearing: False switches off multiple scattering, straggling and hit smearing.
        debug: Also return per-muon station columns: ``true_mup_x_st1`` ... ``true_mum_y_st4``
            (cm, true positions), ``mup_nhits_st1`` ... ``mum_nhits_st3`` and the
            reconstructed ``mup_pz_st1``, ``mum_pz_st1`` (GeV).

    Returns:
        The accepted events, with every input column plus ``true_vx, true_vy, true_vz`` (cm),
        the truth dimuon observables ``true_mass, ..., true_phi`` (computed when absent), the
        reconstructed muons ``mup_E, ..., mum_pz`` at the vertex and ``mass, pT, xF, phi,
        costh, x1, x2``; and the counts after each stage.
    """
    truth.require(TRUTH_LEPTON_COLUMNS, "the truth events given to simulate_detector")
    leptons = np.stack(
        [truth.matrix([truth_name(c) for c in FOUR_VECTOR_COLUMNS[lep]]) for lep in LEPTONS],
        axis=1,
    )  # (N, 2, 4)
    ev = _transport(leptons, config, rng, smearing)
    ev.update(reco=_reconstruct(ev, config, rng, smearing))
    _dimuon_cuts(ev, config, beam_energy)

    index = ev["index"]
    columns = {"true_vx": ev["vx"], "true_vy": ev["vy"], "true_vz": ev["vz"]}
    missing = [c for c in DIMUON_COLUMNS if truth_name(c) not in truth]
    if missing:
        true_obs = dilepton_observables(
            leptons[index, 0], leptons[index, 1], *beam_target(beam_energy)
        )
        columns.update({truth_name(c): true_obs[c] for c in missing})
    for i, lep in enumerate(LEPTONS):
        for j, name in enumerate(FOUR_VECTOR_COLUMNS[lep]):
            columns[name] = ev["reco"][:, i, j]
    columns.update({c: ev[f"reco_{c}"] for c in DIMUON_COLUMNS})
    if debug:
        columns.update(_debug_columns(ev))
    table = truth.select(index).with_columns(columns)
    table.meta["detector"] = {
        "model": "dyfit.detector.spectrometer",
        "smearing": smearing,
        "beam_energy_GeV": beam_energy,
        "config": config.model_dump(mode="json"),
    }
    return table, DetectorSummary(dict(ev.counts))
