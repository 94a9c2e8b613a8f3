"""Studies of the fits on pseudo-experiments: bias, pulls, coverage, efficiency."""

from dyfit.studies.pseudo import METHODS, StudyResult, run_study, run_toy, summarise, toy_rngs

__all__ = ["METHODS", "StudyResult", "run_study", "run_toy", "summarise", "toy_rngs"]
