r"""Tabulate CTEQ5L x·f(x, Q²) of the proton from Pythia 8 into ``src/dyfit/physics/data``.

CTEQ5L is the leading-order set of Lai et al., Eur. Phys. J. C12 (2000) 375,
hep-ph/9903282; Pythia 8 carries it built in, so the table needs no LHAPDF.
Its sea is flavour-asymmetric (d̄/ū ≠ 1), which is what separates a deuterium
target from hydrogen at large x2.

Grid (chosen for < 0.5 % bilinear interpolation error in (logit x, ln Q²) of
ln x·f, measured against direct Pythia calls in ``tests/test_pdf.py``):

- x: uniform in logit x = ln(x / (1 - x)) from 1e-3 to 0.999, so log-spaced at
  small x and log(1 - x)-spaced near 1, where x·f falls like a power of 1 - x;
- Q²: log-spaced from (3 GeV)² to (12 GeV)², around the Drell-Yan masses
  4-10 GeV of a 120 GeV beam; the Q² dependence is slow.

Run: ``.venv/bin/python scripts/make_pdf_table.py [-o PATH]``. Needs ``pythia8mc``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["FLAVOURS", "x_nodes", "q2_nodes", "tabulate", "main"]

# PDG codes: d, u, s, c, their antiquarks, then the gluon (kept for the momentum sum rule).
FLAVOURS = (1, 2, 3, 4, -1, -2, -3, -4, 21)
X_MIN, X_MAX, N_X = 1e-3, 0.999, 160
Q_MIN, Q_MAX, N_Q2 = 3.0, 12.0, 12  # GeV
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "src/dyfit/physics/data/cteq5l.npz"


def x_nodes(n: int = N_X) -> np.ndarray:
    """The x nodes, uniform in logit x over [X_MIN, X_MAX], shape (n,)."""
    logit = np.linspace(np.log(X_MIN / (1 - X_MIN)), np.log(X_MAX / (1 - X_MAX)), n)
    return 1.0 / (1.0 + np.exp(-logit))


def q2_nodes(n: int = N_Q2) -> np.ndarray:
    """The Q² nodes in GeV², log-spaced over [Q_MIN², Q_MAX²], shape (n,)."""
    return np.geomspace(Q_MIN**2, Q_MAX**2, n)


def tabulate(x: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """x·f of the proton for FLAVOURS at every (x, Q²) node, shape (flavour, nx, nq2)."""
    import pythia8mc

    pdf = pythia8mc.CTEQ5L(2212)
    # A one-off table of ~2e4 calls: a plain loop is clearer than any batching trick.
    return np.array([[[pdf.xf(f, xi, qi) for qi in q2] for xi in x] for f in FLAVOURS])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    x, q2 = x_nodes(), q2_nodes()
    xf = tabulate(x, q2)
    if not np.all(xf > 0):
        raise SystemExit("CTEQ5L returned x*f <= 0 on the grid; the log interpolation needs > 0")
    version = importlib.metadata.version("pythia8mc")
    source = np.array(
        [
            f"CTEQ5L LO (Lai et al., EPJ C12 (2000) 375, hep-ph/9903282) from Pythia {version}"
            " (pythia8mc.CTEQ5L(2212)); proton x*f(x, Q^2), Q^2 in GeV^2"
        ]
    )
    out = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(
                fh, x=x, q2=q2, xf=xf, flavours=np.array(FLAVOURS, dtype=np.int32), source=source
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; this is a shipped data file
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} kB): xf shape {xf.shape}")


if __name__ == "__main__":
    main()
