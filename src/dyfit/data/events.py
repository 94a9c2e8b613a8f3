"""A table of events: named NumPy columns plus provenance metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dyfit.errors import InputError

__all__ = ["EventTable"]


@dataclass
class EventTable:
    """Events as equal-length 1-D columns, with JSON-serialisable metadata.

    The metadata records where the events came from (generator, detector
    configuration, θ, seed, dyfit version) and travels into every file written.
    """

    columns: dict[str, NDArray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {name: len(col) for name, col in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"event table columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> NDArray:
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def require(self, names: Iterable[str], what: str = "the event table") -> None:
        """Raise InputError naming every column in ``names`` that is missing."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            have = ", ".join(self.names) or "none"
            raise InputError(f"{what} lacks column(s) {', '.join(missing)}; it has {have}")

    def matrix(self, names: Sequence[str], dtype: type = np.float64) -> NDArray:
        """The columns ``names`` stacked into an array with shape (N, len(names))."""
        self.require(names)
        return np.stack([np.asarray(self.columns[n], dtype=dtype) for n in names], axis=-1)

    def select(self, mask: NDArray) -> EventTable:
        """The events where ``mask`` (boolean or integer index) selects, same metadata."""
        return EventTable({k: v[mask] for k, v in self.columns.items()}, dict(self.meta))

    def head(self, n: int) -> EventTable:
        return self.select(slice(0, n))

    def with_columns(self, extra: Mapping[str, NDArray]) -> EventTable:
        """A new table with columns added or replaced."""
        return EventTable({**self.columns, **extra}, dict(self.meta))

    @classmethod
    def concat(cls, tables: Sequence[EventTable]) -> EventTable:
        """Stack tables with the same columns; metadata is taken from the first."""
        if not tables:
            return cls()
        names = tables[0].names
        for t in tables[1:]:
            if t.names != names:
                raise InputError("cannot concatenate event tables with different columns")
        return cls(
            {n: np.concatenate([t.columns[n] for t in tables]) for n in names},
            dict(tables[0].meta),
        )
