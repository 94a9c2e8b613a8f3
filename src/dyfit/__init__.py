"""dyfit: Drell-Yan angular coefficients from detector-level events.

The package imports nothing heavy at start-up (torch, matplotlib and uproot are
imported where they are used), so ``dyfit --version`` stays fast.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
