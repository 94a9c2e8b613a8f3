"""The names of the fit methods (a light module: the CLI lists them without importing torch).

The neural methods use a trained ratio model, the binned methods histogram the events and
use the nominal simulation's truth columns, the generative method uses a conditional VAE.
"""

__all__ = ["NEURAL_METHODS", "BINNED_METHODS", "GENERATIVE_METHODS", "FIT_METHODS"]

NEURAL_METHODS = ("likelihood", "bce", "bce-adam")
BINNED_METHODS = ("binned-acceptance", "unfold", "template")
GENERATIVE_METHODS = ("cvae",)
FIT_METHODS = NEURAL_METHODS + BINNED_METHODS + GENERATIVE_METHODS
