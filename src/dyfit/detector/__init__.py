"""The SeaQuest-like spectrometer: configuration, fast simulation and reconstruction."""

from dyfit.detector.config import SpectrometerConfig
from dyfit.detector.spectrometer import simulate_detector
from dyfit.detector.summary import STAGES, DetectorSummary

__all__ = ["SpectrometerConfig", "DetectorSummary", "simulate_detector", "STAGES"]
