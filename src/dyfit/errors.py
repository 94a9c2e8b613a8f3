"""The package's exceptions and warnings.

Every error a user can act on derives from :class:`DyfitError`; the CLI prints
its message as one line and exits with its ``exit_code``.
"""

__all__ = [
    "DyfitError",
    "InputError",
    "ConfigError",
    "CheckpointError",
    "DyfitWarning",
]


class DyfitError(Exception):
    """Base class of all errors dyfit raises on purpose."""

    exit_code = 1


class InputError(DyfitError):
    """Bad input: a file, a column, a value or an option that cannot be used."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file or value that does not validate."""


class CheckpointError(InputError):
    """A model checkpoint that is missing, corrupted or from another version."""


class DyfitWarning(UserWarning):
    """A result that is usable but deserves a look (boundary minimum, low acceptance, ...)."""
