r"""The SeaQuest-like spectrometer as validated configuration data.

Coordinates: z = 0 at the upstream face of FMAG, beam along +z, y up, x to make a
right-handed frame; lengths in cm, momenta in GeV. The defaults are the E906/E1039
numbers collected in ``/work/shared/reference/seaquest.md`` (spectrometer paper
arXiv:1706.09990; public code E1039-Collaboration/e1039-core, liuk/DPSim). Items the
reference marks uncertain, and the models chosen here (energy-loss law, straggling,
thin kicks), are tunable defaults, not constants.

Charge/bending convention: a magnet with a positive ``pt_kick_GeV`` bends μ+ towards
+x and μ- towards -x. FMAG's default does so; KMAG bends in the same sense unless its
``bend_sign`` is -1.

Every window is a ``(low, high)`` pair; TOML's ``inf``/``-inf`` switch a side off, e.g.
``mass_GeV = [4.5, inf]``. Load a file with ``load_toml(path, SpectrometerConfig)``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from dyfit.config import StrictModel

__all__ = [
    "Range",
    "TargetConfig",
    "FmagConfig",
    "KmagConfig",
    "StationConfig",
    "AbsorberConfig",
    "ChamberConfig",
    "TrackQuality",
    "AnalysisCuts",
    "ReconstructionConfig",
    "SpectrometerConfig",
]


def _ordered(window: tuple[float, float]) -> tuple[float, float]:
    if not window[0] < window[1]:
        raise ValueError(f"window must have low < high, got {list(window)}")
    return window


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]


class TargetConfig(StrictModel):
    """The liquid target: vertex z uniform over its length, x and y Gaussian (beam spot)."""

    z_center_cm: float = -130.0
    length_cm: NonNegativeFloat = 50.8
    beam_sigma_x_cm: NonNegativeFloat = 0.3
    beam_sigma_y_cm: NonNegativeFloat = 0.3


class FmagConfig(StrictModel):
    r"""The solid-iron focusing magnet, field along y.

    Mean energy loss over the full length, a tunable model matching the reference's
    7.7-8.1 GeV for entry momenta p of 10-100 GeV:
    ΔE(p) = ``eloss_GeV`` + ``eloss_log_slope_GeV`` · log10(p / ``eloss_p_ref_GeV``).
    ``straggling_GeV`` (Gaussian σ of the total loss) is an assumption, not a measured number.
    Multiple scattering: projected rms angle θ0 = ``ms_theta0_GeV`` / p (rad, p in GeV)
    over the full length.
    """

    z_start_cm: float = 0.0
    z_end_cm: float = 503.0
    half_width_cm: PositiveFloat = 80.0
    pt_kick_GeV: float = 3.0
    eloss_GeV: NonNegativeFloat = 7.7
    eloss_log_slope_GeV: float = 0.4
    eloss_p_ref_GeV: PositiveFloat = 10.0
    straggling_GeV: NonNegativeFloat = 0.3
    ms_theta0_GeV: NonNegativeFloat = 0.28

    @model_validator(mode="after")
    def _length(self) -> FmagConfig:
        if not self.z_start_cm < self.z_end_cm:
            raise ValueError("FMAG needs z_start_cm < z_end_cm")
        return self

    @property
    def z_kick_cm(self) -> float:
        """The mid-plane, where the thin FMAG kick is applied."""
        return 0.5 * (self.z_start_cm + self.z_end_cm)


class KmagConfig(StrictModel):
    """The air-gap analysing magnet, a thin kick at ``z_kick_cm`` within an aperture."""

    z_kick_cm: float = 1042.0
    pt_kick_GeV: PositiveFloat = 0.41
    bend_sign: Literal[1, -1] = 1
    half_aperture_x_cm: PositiveFloat = 145.0
    half_aperture_y_cm: PositiveFloat = 102.0

    @property
    def signed_kick_GeV(self) -> float:
        """The kick a μ+ receives in x, GeV (μ- gets the opposite)."""
        return self.bend_sign * self.pt_kick_GeV


class StationConfig(StrictModel):
    """A tracking station: its z and active x and y ranges (cm)."""

    z_cm: float
    x_range_cm: Range
    y_range_cm: Range


class AbsorberConfig(StrictModel):
    """The iron muon-identification wall before station 4; muons below its loss stop."""

    z_center_cm: float = 2028.0
    thickness_cm: PositiveFloat = 100.0
    eloss_GeV: NonNegativeFloat = 1.5


class ChamberConfig(StrictModel):
    """Drift chambers in stations 1-3: per-plane resolution, planes, efficiency.

    A station measures x and y alike with σ = resolution/√n_hits (a simplification: the
    real stereo U/V planes measure y less well than x).
    """

    resolution_cm: NonNegativeFloat = 0.04
    planes_per_station: int = Field(6, ge=1)
    plane_efficiency: float = Field(0.94, ge=0.0, le=1.0)
    min_hits: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _enough_planes(self) -> ChamberConfig:
        if self.min_hits > self.planes_per_station:
            raise ValueError("min_hits exceeds planes_per_station")
        return self


class TrackQuality(StrictModel):
    """Windows on each reconstructed track at station 1 (slopes, 1/p in 1/GeV)."""

    max_abs_tx: PositiveFloat = 0.15
    max_abs_ty: PositiveFloat = 0.1
    inv_p_per_GeV: Range = (0.01, 0.2)


class AnalysisCuts(StrictModel):
    """The standard SeaQuest Drell-Yan selection on reconstructed quantities.

    Single-muon pz at station 1, and the target-constrained dimuon (GeV): pz, |px|, |py|,
    pT², xF, x2 (x_T) and the mass. Applied in this order; use ``inf`` to switch one off.
    """

    mu_pz_st1_GeV: Range = (9.0, 75.0)
    dimuon_pz_GeV: Range = (38.0, 116.0)
    dimuon_abs_px_max_GeV: PositiveFloat = 1.8
    dimuon_abs_py_max_GeV: PositiveFloat = 2.0
    dimuon_pT2_max_GeV2: PositiveFloat = 5.0
    xF: Range = (-0.1, 0.95)
    x2: Range = (0.05, 0.55)
    mass_GeV: Range = (4.5, 8.8)


class ReconstructionConfig(StrictModel):
    """How tracks are swum back: the constrained vertex and the energy-loss iterations."""

    vertex_z_cm: float | None = Field(None, description="None: the target centre")
    eloss_iterations: int = Field(4, ge=1)


def _station(z: float, x: tuple[float, float], y: tuple[float, float]) -> StationConfig:
    return StationConfig(z_cm=z, x_range_cm=x, y_range_cm=y)


class SpectrometerConfig(StrictModel):
    """The whole fast-simulation and reconstruction model; see the module docstring."""

    target: TargetConfig = TargetConfig()
    fmag: FmagConfig = FmagConfig()
    kmag: KmagConfig = KmagConfig()
    station1: StationConfig = _station(667.0, (-81.6, 80.4), (-70.0, 69.7))
    station2: StationConfig = _station(1340.0, (-100.4, 102.8), (-152.1, 151.9))
    station3: StationConfig = _station(1910.0, (-113.7, 113.9), (-168.0, 167.3))
    station4: StationConfig = _station(2240.0, (-152.1, 152.4), (-183.6, 182.2))
    absorber: AbsorberConfig = AbsorberConfig()
    chambers: ChamberConfig = ChamberConfig()
    trigger_opposite_y_st3: bool = True
    quality: TrackQuality = TrackQuality()
    cuts: AnalysisCuts = AnalysisCuts()
    reconstruction: ReconstructionConfig = ReconstructionConfig()

    @model_validator(mode="after")
    def _layout(self) -> SpectrometerConfig:
        zs = {
            "target downstream end": self.target.z_center_cm + 0.5 * self.target.length_cm,
            "fmag.z_start_cm": self.fmag.z_start_cm,
            "fmag.z_end_cm": self.fmag.z_end_cm,
            "station1.z_cm": self.station1.z_cm,
            "kmag.z_kick_cm": self.kmag.z_kick_cm,
            "station2.z_cm": self.station2.z_cm,
            "station3.z_cm": self.station3.z_cm,
            "absorber front": self.absorber.z_center_cm - 0.5 * self.absorber.thickness_cm,
            "absorber back": self.absorber.z_center_cm + 0.5 * self.absorber.thickness_cm,
            "station4.z_cm": self.station4.z_cm,
        }
        names = list(zs)
        for a, b in zip(names, names[1:], strict=False):
            if not zs[a] < zs[b]:
                raise ValueError(f"detector elements out of order along z: {a} >= {b}")
        return self

    @property
    def vertex_z_cm(self) -> float:
        """The z the reconstruction constrains the vertex to."""
        z = self.reconstruction.vertex_z_cm
        return self.target.z_center_cm if z is None else z
