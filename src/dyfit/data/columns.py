"""The named columns of a dyfit event table, with their units.

Reconstructed (detector-level) columns carry plain names; generator truth is
prefixed ``true_``; the θ an event was generated at is ``theta_lambda`` etc.
Muon four-momenta are (E, px, py, pz) in the lab, beam along +z.
"""

from __future__ import annotations

__all__ = [
    "DIMUON_COLUMNS",
    "FEATURES_DEFAULT",
    "FOUR_VECTOR_COLUMNS",
    "THETA_COLUMNS",
    "TRUTH_LEPTON_COLUMNS",
    "UNITS",
    "truth",
]

# The proposal's detector-level features x = (mass, pT, xF, phi, cos theta).
FEATURES_DEFAULT = ("mass", "pT", "xF", "phi", "costh")
DIMUON_COLUMNS = ("mass", "pT", "xF", "phi", "costh", "x1", "x2")
FOUR_VECTOR_COLUMNS = {
    lep: tuple(f"{lep}_{c}" for c in ("E", "px", "py", "pz")) for lep in ("mup", "mum")
}
TRUTH_LEPTON_COLUMNS = tuple("true_" + c for cols in FOUR_VECTOR_COLUMNS.values() for c in cols)
THETA_COLUMNS = ("theta_lambda", "theta_mu", "theta_nu")

UNITS = {
    "mass": "GeV",
    "pT": "GeV",
    "xF": "",
    "phi": "rad",
    "costh": "",
    "x1": "",
    "x2": "",
    "vx": "cm",
    "vy": "cm",
    "vz": "cm",
    **{c: "GeV" for cols in FOUR_VECTOR_COLUMNS.values() for c in cols},
    **{c: "" for c in THETA_COLUMNS},
}
UNITS.update({"true_" + k: v for k, v in list(UNITS.items()) if not k.startswith("theta_")})


def truth(name: str) -> str:
    """The truth column that belongs to a reconstructed one: ``truth("costh") == "true_costh"``."""
    return "true_" + name
