"""Configuration as validated data: strict pydantic models loaded from TOML."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import tomllib
from pydantic import BaseModel, ConfigDict, ValidationError

from dyfit.errors import ConfigError

__all__ = ["StrictModel", "load_toml", "validate"]


class StrictModel(BaseModel):
    """A frozen model that refuses unknown keys and wrong types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


M = TypeVar("M", bound=StrictModel)


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if not where.isprintable():  # an unknown key may hold a newline: the message stays one line
        where = repr(where)
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def validate(model: type[M], data: dict, source: str = "configuration") -> M:
    """Build ``model`` from a dict, turning validation errors into one-line ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_one_line(err)}") from None


def load_toml(path: str | Path, model: type[M], table: str | None = None) -> M:
    """Read a TOML file (optionally one of its tables) into a validated ``model``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as err:  # a folder, no permission, ...: the OS's reason, in one line
        raise ConfigError(f"config file {path} cannot be read ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    if table is not None:
        data = data.get(table, {})
    return validate(model, data, source=str(path))
