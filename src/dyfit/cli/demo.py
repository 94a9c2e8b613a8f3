"""``dyfit demo``: the whole chain on the built-in simulation, ending in report.md."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


@click.command(name="demo")
@click.option(
    "-o",
    "--output",
    "out_dir",
    default="demo-output",
    type=click.Path(path_type=Path),
    show_default=True,
    help="Folder for the report, models, data and figures.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML file with DemoConfig fields (sizes, theta, seed).",
)
def command(out_dir: Path, config_file: Path | None) -> None:
    """Simulate, train, fit and write OUT/report.md with the proposal's figures."""
    from dyfit.config import load_toml
    from dyfit.demo import DemoConfig, run_demo

    cfg = load_toml(config_file, DemoConfig) if config_file else DemoConfig()
    report = run_demo(out_dir, cfg)
    click.echo(f"wrote {report}")
