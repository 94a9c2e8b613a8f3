"""Figures in the field's style (mplhep), saved as PNG and PDF."""
