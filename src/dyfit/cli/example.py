"""``dyfit example gaussian``: the proposal's Gaussian cVAE example (Figures 4 and 5)."""

from __future__ import annotations

from pathlib import Path

import click

from dyfit.cli.options import count_option, seed_option

__all__ = ["command"]


@click.group(name="example")
def command() -> None:
    """Worked examples that reproduce the proposal's figures."""


@command.command(name="gaussian")
@click.option(
    "-o",
    "--output",
    "out_dir",
    default="example-gaussian",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for figures and tables.",
)
@count_option("--toys", 100, 2, "Pseudo-experiments at the secret mu.")
@count_option("--events", 10_000, 10, "Events per data set.")
@seed_option
def gaussian(out_dir: Path, toys: int, events: int, seed: int) -> None:
    """Fit the mean of x ~ N(mu, 1) through a cVAE trained on mu in [-2, 2]; secret mu = 1.5."""
    from dyfit.studies.gaussian import GaussianSettings, run_gaussian_example

    record = run_gaussian_example(
        out_dir, GaussianSettings(events=events, toys=toys, seed=seed), k_toys=min(20, toys)
    )
    click.echo((out_dir / "results.md").read_text(), nl=False)
    click.echo(f"wrote {out_dir} in {record['seconds']:.0f} s")
