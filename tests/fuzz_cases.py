"""Shared helpers of the fuzz suite (tests/test_fuzz_*.py): case counters and CLI checks.

Every fuzz test calls :func:`tried` once per generated case; a module fixture made by
:func:`report_cases` prints the count per area when the module finishes (also under
pytest's output capture) and, if ``DYFIT_FUZZ_COUNTS`` names a file, appends it there
as one JSON line, which is how the table in docs/robustness.md is made.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

__all__ = ["CASES", "fuzz", "tried", "report_cases", "run_cli", "assert_refused", "files_under"]

CASES: Counter[str] = Counter()

# deterministic (CI reruns the same cases), no per-case deadline (the first read imports pyarrow)
FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzz(max_examples: int) -> settings:
    """The suite's settings with ``max_examples`` cases (sized so the suite runs in ~60 s)."""
    return settings(FUZZ, max_examples=max_examples)


def tried(area: str) -> None:
    CASES[area] += 1


def report_cases(*areas: str):
    """A module-scoped autouse fixture that reports the cases tried in ``areas``."""

    @pytest.fixture(scope="module", autouse=True)
    def _report(request):
        yield
        counts = {a: CASES[a] for a in areas}
        plugins = request.config.pluginmanager
        reporter, capture = (
            plugins.get_plugin("terminalreporter"),
            plugins.get_plugin("capturemanager"),
        )
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"fuzz cases tried: {counts}")
        target = os.environ.get("DYFIT_FUZZ_COUNTS")
        if target:
            with open(target, "a") as fh:
                fh.write(json.dumps(counts) + "\n")

    return _report


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``dyfit ARGV`` in this process: (exit code, stdout, stderr)."""
    from dyfit.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
            code = 0
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue()


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_refused(code: int, err: str, folder: Path, before: set[str]) -> str:
    """Exit code 2, one stderr line "dyfit: error: ...", no traceback, nothing new in ``folder``."""
    lines = err.strip("\n").split("\n")
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("dyfit: error: "), err
    assert "Traceback" not in err
    after = files_under(folder)
    assert after == before, sorted(after - before)  # no partial output, no *.tmp left over
    return lines[0]
