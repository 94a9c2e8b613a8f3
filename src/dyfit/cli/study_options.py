"""Click options of the pseudo-experiment commands (``dyfit study``, ``dyfit compare``).

Where the toys come from (``--source``), how they fan out over Dask, and which fit
methods run on them. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from dyfit.cli.options import count_option, scheduler_options, seed_option, workers_option
from dyfit.errors import InputError

__all__ = [
    "source_option",
    "event_source",
    "dask_options",
    "methods_option",
    "parse_methods",
    "toy_options",
]


source_option = click.option(
    "--source",
    default="recorded",
    show_default=True,
    metavar="recorded|toy|pool:FILE",
    help="Where the toys come from: the model's recorded simulation, the analytic toy, or a "
    "large simulation at theta0 in FILE, reweighted exactly to each theta (dyfit.studies.pool).",
)


def event_source(source: str, model_dir: str | None, workers: int):
    """The event source ``--source`` names (``workers`` processes for the recorded one)."""
    kind, _, path = source.partition(":")
    if kind == "toy" and not path:
        from dyfit.toy import ToyExperiment

        return ToyExperiment()
    if kind == "pool" and path:
        from dyfit.studies.pool import EventPool

        return EventPool.from_file(path)
    if kind == "recorded" and not path:
        if model_dir is None:
            raise InputError("--source recorded needs --model RUN_DIR; or use toy or pool:FILE")
        from dyfit.cli.fit import recorded_source

        return recorded_source(model_dir, workers)
    raise InputError(f"--source {source!r}: use recorded, toy or pool:FILE")


dask_options = scheduler_options(
    "Fan the toys out over Dask: 'local' (a LocalCluster), a scheduler address "
    "(tcp://host:8786) or a scheduler file (*.json). Results do not depend on it."
)


def methods_option(default: str | None, help_default: str) -> Callable:
    """``--methods``: comma-separated fit methods."""
    from dyfit.fitting.methods import FIT_METHODS

    return click.option(
        "--methods",
        default=default,
        show_default=default is not None,
        help=f"Comma-separated, from {', '.join(FIT_METHODS)}{help_default}.",
    )


def parse_methods(text: str | None) -> list[str] | None:
    """``--methods`` as a list (None when not given); unknown names are refused."""
    from dyfit.fitting.methods import FIT_METHODS

    if text is None:
        return None
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in FIT_METHODS]
    if unknown or not methods:
        raise InputError(
            f"--methods {text!r}: unknown {', '.join(unknown) or 'none given'}; "
            f"use {', '.join(FIT_METHODS)}"
        )
    return methods


def toy_options(f: Callable) -> Callable:
    """The pseudo-experiment options shared by ``dyfit study`` and ``dyfit compare``."""
    decorators = [
        click.option(
            "--theta",
            "thetas",
            multiple=True,
            required=True,
            help="Injected theta L,M,V; repeat for more points.",
        ),
        count_option("--toys", 100, 2),
        click.option("--events", type=click.IntRange(min=1), required=True, help="Events per toy."),
        click.option(
            "--nominal-events",
            type=click.IntRange(min=1),
            help="Fresh nominal events per toy [default: 3x --events].",
        ),
        source_option,
        seed_option,
        workers_option,
        dask_options,
        click.option("--cvae", "cvae_dir", help="A cVAE run directory, for the cvae method."),
        click.option(
            "-o",
            "--output",
            required=True,
            type=click.Path(file_okay=False),
            help="Output folder; each finished toy is kept there, so a rerun resumes a "
            "killed study.",
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f
