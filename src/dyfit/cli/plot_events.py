"""``dyfit plot-events``: reco-vs-truth, acceptance and mass-resolution figures of an event file.

Example:
    dyfit plot-events events.parquet -o plots/
"""

from __future__ import annotations

import click

from dyfit.cli.options import columns_option

__all__ = ["command"]


@click.command(name="plot-events")
@click.argument("events_file", metavar="FILE[:TREE]")
@click.option("-o", "--outdir", required=True, help="folder for the PNG and PDF figures.")
@columns_option
def command(events_file, outdir, columns):
    """Draw the event figures of FILE into a folder."""
    from dyfit.data.io import read_events
    from dyfit.plots.events import plot_events

    table = read_events(events_file, columns=columns)
    paths = plot_events(table, outdir)
    for path in paths:
        click.echo(str(path))
