"""The journal of a running study: finished toys kept on disk, so a killed study resumes.

``OUT/toys.jsonl`` holds one JSON line identifying the study (its settings, the
injected θ, fingerprints of the models and the event source), then one line per
finished toy with its records, appended and flushed as each toy ends. A line cut
short by a kill is ignored (that toy is run again), and the file is rewritten
without it (atomically) before new lines are appended. A journal of another study
is refused: its toys would not belong to this one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dyfit.atomic import finite_json, write_text_atomic
from dyfit.errors import InputError

__all__ = ["JOURNAL", "ToyJournal", "fingerprint", "describe_source"]

JOURNAL = "toys.jsonl"


def fingerprint(obj: Any) -> str | None:
    """A SHA-256 of a model's class, state (tensors, bit for bit), features and prior box."""
    if obj is None:
        return None
    h = hashlib.sha256(type(obj).__qualname__.encode())
    state = getattr(obj, "state_dict", None)
    for name, t in sorted(state().items()) if callable(state) else ():
        import torch

        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{t.numel()}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())  # the bytes of any dtype, bfloat16 too
    h.update(json.dumps(list(getattr(obj, "feature_names", ()))).encode())
    prior = getattr(obj, "prior", None)
    if prior is not None:
        h.update(prior.bounds.tobytes())
    return h.hexdigest()


def describe_source(source: Any) -> dict[str, Any]:
    """An event source's provenance (``describe()``), else its class and scalar settings."""
    describe = getattr(source, "describe", None)
    if callable(describe):
        return finite_json(describe())
    scalars = {k: v for k, v in vars(source).items() if isinstance(v, bool | int | float | str)}
    return {"type": type(source).__qualname__, **finite_json(scalars)}


def _lines(path: Path) -> tuple[list[Any], bool]:
    """The parsed complete lines of ``path``, and whether any line had to be left out."""
    text = path.read_bytes()
    parsed, damaged = [], not text.endswith(b"\n")
    for line in text.split(b"\n")[:-1]:  # the part after the last \n was cut short
        try:
            parsed.append(json.loads(line))
        except ValueError:
            damaged = True
    return parsed, damaged


class ToyJournal:
    """Append-only records of finished toys in ``folder/toys.jsonl``.

    Arguments:
        folder: The study's output folder.
        header: What identifies the study (JSON-serialisable); a journal there with another
            header raises InputError.

    Attributes:
        done: (θ index, toy index) → that toy's records, for the toys found on disk.
    """

    def __init__(self, folder: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(folder) / JOURNAL
        header = json.loads(json.dumps(finite_json(header), allow_nan=False))
        self.done: dict[tuple[int, int], list[dict[str, Any]]] = {}
        if not self.path.is_file():
            write_text_atomic(self.path, json.dumps({"study": header}) + "\n")
            return
        lines, damaged = _lines(self.path)
        first = lines[0] if lines else None
        if not (isinstance(first, dict) and "study" in first):
            raise InputError(
                f"{self.path} does not start with a study header; remove it to start afresh"
            )
        if first["study"] != header:
            keys = sorted(set(header) | set(first["study"]))
            diff = [k for k in keys if header.get(k) != first["study"].get(k)]
            raise InputError(
                f"{self.path.parent} holds another study (differs in {', '.join(diff)}); "
                "choose another output folder, or remove it to start afresh"
            )
        good = [first]
        for line in lines[1:]:
            if isinstance(line, dict) and {"theta_index", "toy", "records"} <= set(line):
                self.done[line["theta_index"], line["toy"]] = line["records"]
                good.append(line)
            else:
                damaged = True
        if damaged:  # appends must start on a fresh line
            write_text_atomic(self.path, "".join(json.dumps(g) + "\n" for g in good))

    def append(self, theta_index: int, toy_index: int, records: list[dict[str, Any]]) -> None:
        """Keep one finished toy: one line, flushed to disk before returning."""
        line = {"theta_index": theta_index, "toy": toy_index, "records": records}
        text = json.dumps(finite_json(line), allow_nan=False) + "\n"
        with open(self.path, "a") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        self.done[theta_index, toy_index] = records
