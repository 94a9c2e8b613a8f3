"""Event counts after each stage of the spectrometer chain, for acceptance tables."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DetectorSummary", "STAGES"]

# The stages of :func:`dyfit.detector.spectrometer.simulate_detector`, in order: muons out
# of FMAG, inside each station (4 after the absorber) and KMAG's gap, trigger, tracking
# (hits and charge), track quality, then each analysis cut (see AnalysisCuts).
STAGES = (
    "generated", "fmag", "station1", "kmag", "station2", "station3", "station4", "trigger",
    "tracking", "quality", "mu_pz_st1", "dimuon_pz", "dimuon_px", "dimuon_py", "dimuon_pT2",
    "xF", "x2", "mass",
)  # fmt: skip


@dataclass(frozen=True)
class DetectorSummary:
    """Events remaining after each stage of :func:`simulate_detector`, in order of ``STAGES``."""

    counts: dict[str, int]

    @property
    def generated(self) -> int:
        return self.counts["generated"]

    @property
    def accepted(self) -> int:
        return self.counts[STAGES[-1]]

    @property
    def acceptance(self) -> float:
        """Accepted / generated (0 for no events)."""
        return self.accepted / self.generated if self.generated else 0.0

    def __add__(self, other: DetectorSummary) -> DetectorSummary:
        """Counts of two runs together (chunked simulation)."""
        return DetectorSummary({k: self.counts[k] + other.counts[k] for k in STAGES})

    def __radd__(self, other: int) -> DetectorSummary:
        """Lets ``sum(summaries)`` start from 0."""
        if other != 0:
            return NotImplemented
        return self

    def __str__(self) -> str:
        rows = [f"{'stage':<11} {'events':>12} {'of generated':>13}"]
        for stage, count in self.counts.items():
            frac = count / self.generated if self.generated else 0.0
            rows.append(f"{stage:<11} {count:>12d} {frac:>13.4%}")
        return "\n".join(rows)
