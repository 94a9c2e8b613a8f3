"""Allows ``python -m dyfit``."""

from dyfit.cli.main import main

main()
