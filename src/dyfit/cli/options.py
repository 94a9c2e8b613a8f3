"""Click options shared by the dyfit commands, and the checks that turn them into library inputs.

Values are parsed by the library's own parsers (``parse_theta``, ``parse_prior``),
so a bad value is one :class:`~dyfit.errors.InputError` line. Nothing heavy is
imported at module level: ``dyfit CMD --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dyfit.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from dyfit.physics.prior import ThetaPrior

__all__ = [
    "theta_options",
    "resolve_theta",
    "parse_columns",
    "columns_option",
    "output_option",
    "seed_option",
    "smearing_option",
    "config_option",
    "workers_option",
    "nominal_options",
    "source_option",
    "event_source",
    "dask_options",
    "check_dask",
    "methods_option",
    "parse_methods",
    "toy_options",
    "run_dir_option",
    "check_new_run_dir",
    "count_option",
    "epochs_option",
    "training_prior_option",
    "toy_option",
    "overwrite_option",
    "replica_dask_options",
]


def _theta_callback(ctx: click.Context, param: click.Parameter, value: str | None):
    from dyfit.physics.prior import parse_theta

    return None if value is None else parse_theta(value)


def _prior_callback(ctx: click.Context, param: click.Parameter, value: str | None):
    from dyfit.physics.prior import parse_prior

    return None if value is None else parse_prior(value)


def theta_options(f: Callable) -> Callable:
    """Add ``--lambda/--mu/--nu``, ``--theta L,M,V`` and ``--prior lambda=LO:HI,...``."""
    decorators = [
        click.option("--lambda", "lambda_", type=float, help="lambda (default 1)."),
        click.option("--mu", type=float, help="mu (default 0)."),
        click.option("--nu", type=float, help="nu (default 0)."),
        click.option(
            "--theta",
            callback=_theta_callback,
            help="theta as L,M,V or lambda=L,mu=M,nu=V (default 1,0,0).",
        ),
        click.option(
            "--prior",
            callback=_prior_callback,
            help="draw theta per event, uniform in lambda=LO:HI,mu=LO:HI,nu=LO:HI (or a preset).",
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def resolve_theta(
    lambda_: float | None,
    mu: float | None,
    nu: float | None,
    theta: np.ndarray | None,
    prior: ThetaPrior | None,
) -> tuple[np.ndarray | None, ThetaPrior | None]:
    """(θ with shape (3,), None) for a fixed θ, or (None, prior); θ is checked to be physical."""
    from dyfit.physics.angular import THETA0, check_physical

    parts = {"--lambda": lambda_, "--mu": mu, "--nu": nu}
    given = [k for k, v in parts.items() if v is not None]
    if prior is not None:
        if given or theta is not None:
            raise InputError("give either --prior or a fixed theta (--theta/--lambda/--mu/--nu)")
        return None, prior
    if theta is not None and given:
        raise InputError(f"give theta either with --theta or with {'/'.join(parts)}, not both")
    if theta is None:
        theta = [THETA0[i] if v is None else v for i, v in enumerate(parts.values())]
    return check_physical(theta), None


def parse_columns(text: str | None) -> dict[str, str]:
    """Parse ``dyfitname=filename,...`` into a dict (dyfit name -> column in the file)."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not (sep and key and value):
            raise InputError(f"cannot parse --columns entry {part!r}; write dyfitname=filename")
        if key in mapping:
            raise InputError(f"--columns maps {key} twice")
        mapping[key] = value
    return mapping


columns_option = click.option(
    "--columns",
    callback=lambda ctx, param, value: parse_columns(value),
    metavar="NAME=COLUMN,...",
    help="read file column COLUMN as dyfit column NAME, e.g. true_mup_E=mu1_E.",
)
output_option = click.option(
    "-o", "--output", required=True, help="output file: .parquet (or .pq), .root or .csv."
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="random seed.")
smearing_option = click.option(
    "--smearing/--no-smearing",
    default=True,
    show_default=True,
    help="detector resolution (multiple scattering, straggling, hit smearing).",
)
config_option = click.option(
    "--config",
    metavar="FILE.toml",
    help="TOML with optional [generator] and [detector] tables.",
)


workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes for the built-in simulation (results do not depend on it).",
)


def nominal_options(f: Callable) -> Callable:
    """``--nominal FILE`` and ``--nominal-events M``: the sample that normalises the ratio."""
    f = click.option(
        "--nominal-events",
        type=click.IntRange(min=1),
        help="Nominal events to simulate without --nominal [default: 3x the data].",
    )(f)
    return click.option(
        "--nominal",
        "nominal_path",
        type=click.Path(exists=True, dir_okay=False),
        help="Events at theta0 = (1, 0, 0); simulated with the model's source if not given.",
    )(f)


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


def _dask_options(scheduler_help: str) -> Callable[[Callable], Callable]:
    """``--scheduler`` (described by ``scheduler_help``) and ``--dask-workers``."""

    def decorate(f: Callable) -> Callable:
        f = click.option(
            "--dask-workers",
            type=click.IntRange(min=1),
            help="Processes of the local Dask cluster (--scheduler local) [default: CPU count].",
        )(f)
        return click.option("--scheduler", help=scheduler_help)(f)

    return decorate


dask_options = _dask_options(
    "Fan the toys out over Dask: 'local' (a LocalCluster), a scheduler address "
    "(tcp://host:8786) or a scheduler file (*.json). Results do not depend on it."
)
replica_dask_options = _dask_options(
    "Train the replicas on Dask: 'local' (a LocalCluster), a scheduler address or a "
    "scheduler file (*.json); the workers must see RUN_DIR. Results do not depend on it."
)


def check_dask(scheduler: str | None, dask_workers: int | None) -> None:
    if dask_workers is not None and scheduler != "local":
        raise InputError("--dask-workers applies to --scheduler local only")


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


# --- the training commands (train, train-cvae, train-dctr, example) -------------------------
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


def count_option(flag: str, default: int, minimum: int, help: str | None = None) -> Callable:
    """An integer option ``flag`` of at least ``minimum``, ``default`` shown in --help."""
    return click.option(
        flag, type=click.IntRange(min=minimum), default=default, show_default=True, help=help
    )


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


def data_options(f: Callable) -> Callable:
    """The data to fit and its selection: ``--data``, ``--columns``, ``--weight``, ``--cut``,
    ``--nominal-columns``, ``--config`` and ``--dry-run`` (see :mod:`dyfit.data.recipe`)."""
    decorators = [
        click.option(
            "--data",
            "data_path",
            metavar="FILE[.root:TREE]",
            help="Events to fit (Parquet, ROOT or CSV; FILE.root:TREE picks a tree).",
        ),
        columns_option,
        click.option("--weight", metavar="COLUMN", help="Per-event weights (negative allowed)."),
        click.option(
            "--cut",
            multiple=True,
            metavar="EXPR",
            help='Selection on data and nominal, e.g. "mass > 4.5 and xF < 0.8" (repeatable).',
        ),
        click.option(
            "--nominal-columns",
            callback=lambda ctx, param, value: parse_columns(value),
            metavar="NAME=COLUMN,...",
            help="Column mapping of the --nominal file.",
        ),
        click.option(
            "--config",
            metavar="FILE.toml",
            help="[data] table: file, columns, weight, cuts, nominal (options given here win).",
        ),
        click.option(
            "--dry-run", is_flag=True, help="Print what would be read and selected; no fit."
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f
