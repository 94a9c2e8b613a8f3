"""The plotting style and the one way figures are saved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dyfit.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["new_figure", "save_figure"]


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """A matplotlib figure and axes in the HEP style (mplhep), off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    kwargs.setdefault("figsize", (7.0 * ncols, 5.5 * nrows))
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, **kwargs)


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` (atomically), close it, return the paths."""
    import matplotlib.pyplot as plt

    paths = []
    for suffix in (".png", ".pdf"):
        path = Path(stem).with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=120)
        paths.append(path)
    plt.close(fig)
    return paths
