"""Click options of the training commands (``train``, ``train-cvae``, ``train-dctr``).

Nothing heavy is imported at module level: ``dyfit CMD --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from dyfit.cli.options import count_option, scheduler_options
from dyfit.errors import InputError

__all__ = [
    "run_dir_option",
    "check_new_run_dir",
    "epochs_option",
    "overwrite_option",
    "training_prior_option",
    "toy_option",
    "replica_dask_options",
]


def run_dir_option(help: str, *, required: bool = True) -> Callable:
    """``-o/--output RUN_DIR`` as a :class:`~pathlib.Path` (parameter ``run_dir``)."""
    return click.option(
        "-o",
        "--output",
        "run_dir",
        required=required,
        type=click.Path(path_type=Path),
        default=None,
        help=help,
    )


def check_new_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to replace the model in ``run_dir`` unless ``--overwrite`` was given."""
    from dyfit.training.checkpoint import MANIFEST

    if (run_dir / MANIFEST).exists() and not overwrite:
        raise InputError(f"{run_dir} already holds a model; choose another -o or pass --overwrite")


def epochs_option(default: int) -> Callable:
    """``--epochs``: the most epochs a training runs (early stopping may end it sooner)."""
    return count_option("--epochs", default, 1, "Maximum number of epochs.")


def overwrite_option(help: str = "Replace a model already in the run folder.") -> Callable:
    """``--overwrite``: a flag that lets a command write into a folder holding a model."""
    return click.option("--overwrite", is_flag=True, help=help)


training_prior_option = click.option(
    "--prior",
    default=None,
    help="Training box: lambda=LO:HI,mu=LO:HI,nu=LO:HI or a preset (default, proposal).",
)
toy_option = click.option(
    "--toy", is_flag=True, help="Train on the analytic toy instead of the simulation."
)

replica_dask_options = scheduler_options(
    "Train the replicas on Dask: 'local' (a LocalCluster), a scheduler address or a "
    "scheduler file (*.json); the workers must see RUN_DIR. Results do not depend on it."
)
