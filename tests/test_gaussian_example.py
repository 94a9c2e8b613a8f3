"""The Gaussian cVAE example end to end at a small scale, and its CLI."""

from __future__ import annotations

import json

import numpy as np
import torch
from click.testing import CliRunner

from dyfit.studies.gaussian import GaussianSettings, run_gaussian_example

torch.set_num_threads(1)

TINY = GaussianSettings(events=2000, toys=8, train_events=30_000, epochs=8, width=16, seed=1)


def test_example_writes_figures_and_tables(tmp_path):
    record = run_gaussian_example(tmp_path, TINY, k_compare=4, k_toys=3)
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("fig4_cvae_loss_scan", "fig5_cvae_fit_convergence"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    saved = json.loads((tmp_path / "results.json").read_text())
    fit = saved["fit"]
    # exact MLE: x̄ ± 1/√N; the cVAE value within 4σ of the truth, its error within 15 % of 1/√N
    assert fit["exact_error"] == 1 / np.sqrt(TINY.events)
    assert abs(fit["mu"] - TINY.mu_true) < 4 * fit["exact_error"]
    assert abs(fit["error"] / fit["exact_error"] - 1) < 0.15
    assert abs(fit["adam_mu"] - fit["mu"]) < 0.1 * fit["exact_error"]
    (k1, k4) = saved["toys"]
    assert (k1["summary"]["k"], k1["summary"]["toys"], k4["summary"]["toys"]) == (1, 8, 3)
    assert "| K | toys |" in (tmp_path / "results.md").read_text()
    assert record["seconds"] > 0


def test_cli_help_and_bad_input():
    from dyfit.cli.example import command

    runner = CliRunner()
    assert "gaussian" in runner.invoke(command, ["--help"]).output
    result = runner.invoke(command, ["gaussian", "--toys", "1"])
    assert result.exit_code == 2 and "--toys" in result.output
