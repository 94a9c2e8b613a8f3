"""Click options shared by the dyfit commands, and the checks that turn them into library inputs.

Values are parsed by the library's own parsers (``parse_theta``, ``parse_prior``),
so a bad value is one :class:`~dyfit.errors.InputError` line. Nothing heavy is
imported at module level: ``dyfit CMD --help`` stays fast. The options of the
pseudo-experiment commands are in :mod:`dyfit.cli.study_options`, those of the
training commands in :mod:`dyfit.cli.training_options`.
"""

from __future__ import annotations

from collections.abc import Callable
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
    "count_option",
    "nominal_options",
    "data_options",
    "scheduler_options",
    "check_dask",
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


def count_option(flag: str, default: int, minimum: int, help: str | None = None) -> Callable:
    """An integer option ``flag`` of at least ``minimum``, ``default`` shown in --help."""
    return click.option(
        flag, type=click.IntRange(min=minimum), default=default, show_default=True, help=help
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


def scheduler_options(scheduler_help: str) -> Callable[[Callable], Callable]:
    """``--scheduler`` (described by ``scheduler_help``) and ``--dask-workers``."""

    def decorate(f: Callable) -> Callable:
        f = click.option(
            "--dask-workers",
            type=click.IntRange(min=1),
            help="Processes of the local Dask cluster (--scheduler local) [default: CPU count].",
        )(f)
        return click.option("--scheduler", help=scheduler_help)(f)

    return decorate


def check_dask(scheduler: str | None, dask_workers: int | None) -> None:
    """Refuse ``--dask-workers`` unless the cluster is the local one it sizes."""
    if dask_workers is not None and scheduler != "local":
        raise InputError("--dask-workers applies to --scheduler local only")
