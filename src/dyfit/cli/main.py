"""The ``dyfit`` command: a click group whose subcommands live in sibling modules.

Subcommands are imported lazily, so ``dyfit --version`` does not import NumPy,
torch or matplotlib. Every :class:`~dyfit.errors.DyfitError` becomes one line on
stderr and the error's exit code (2 for bad input).
"""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from dyfit import __version__

__all__ = ["main", "cli"]

# command name -> module in dyfit.cli holding a click command called `command`
COMMANDS = {
    "generate": "generate",
    "simulate-detector": "simulate_detector",
    "plot-events": "plot_events",
    "train": "train",
    "check-ratio": "check_ratio",
    "fit": "fit",
    "fit-differential": "fit_differential",
    "scan": "scan",
    "study": "study",
    "compare": "compare",
    "train-cvae": "train_cvae",
    "train-dctr": "train_dctr",
    "example": "example",
    "demo": "demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"dyfit.cli.{COMMANDS[name]}").command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dyfit")
def cli() -> None:
    """Drell-Yan angular coefficients (lambda, mu, nu) from detector-level events."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """DyfitWarnings as one line each; other warnings as Python prints them."""
    from dyfit.errors import DyfitWarning

    if issubclass(category, DyfitWarning):
        click.echo(f"dyfit: warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    from dyfit.errors import DyfitError, DyfitWarning

    warnings.simplefilter("always", DyfitWarning)
    warnings.showwarning = _show_warning
    try:
        cli.main(args=argv, prog_name="dyfit", standalone_mode=False)
    except DyfitError as err:
        click.echo(f"dyfit: error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("dyfit: aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        # usage errors (a missing option, a value of the wrong type) are bad input too
        click.echo(f"dyfit: error: {err.format_message()}", err=True)
        sys.exit(2)
    sys.exit(0)
