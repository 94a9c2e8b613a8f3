"""The large-file path at small scale: reading only the needed columns, predicting in chunks,
and ``dyfit fit`` reading lean, each giving what the whole-table path gives."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dyfit.data.io import read_events, write_events
from dyfit.errors import InputError
from dyfit.fitting import TruthRatio, fit_likelihood
from dyfit.fitting.evaluate import fit_columns, ratio_sample
from dyfit.networks.classifier import ParametrizedClassifier
from dyfit.physics.angular import THETA0
from dyfit.physics.prior import ThetaPrior
from dyfit.toy import ToyExperiment

torch.set_num_threads(1)

TOY = ToyExperiment(0.5)
THETA = np.array([1.2, 0.1, 0.2])


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(17)
    return TOY.simulate(5000, THETA, rng), TOY.simulate(15000, THETA0, rng)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".root"])
def test_only_reads_the_asked_columns(tmp_path, samples, suffix):
    if suffix == ".root":
        pytest.importorskip("uproot")
    path = write_events(samples[0], tmp_path / f"data{suffix}")
    full = read_events(path)
    some = read_events(path, only=("costh", "phi", "weight"))  # no weight column: skipped
    assert some.names == ["costh", "phi"] and some.meta == full.meta
    for name in some.names:
        np.testing.assert_array_equal(some[name], full[name])
    # A renamed column is read under its dyfit name; unneeded renames are not checked.
    mapped = read_events(path, columns={"cos": "costh", "m": "nothere"}, only=("cos", "mass"))
    assert mapped.names == ["mass", "cos"]
    np.testing.assert_array_equal(mapped["cos"], full["costh"])


def test_only_columns_the_file_lacks(tmp_path, samples):
    path = write_events(samples[0], tmp_path / "data.parquet")
    with pytest.raises(InputError, match="no numeric columns; it has mass, costh"):
        read_events(path, only=("x1",))


def test_chunked_moments_fit_is_the_whole_sample_fit(samples):
    # Moments are computed row by row, so any chunking gives the same ĥ bit for bit, and the
    # fit (same sums, same MIGRAD path) the same θ̂ and covariances.
    data, nominal = samples
    oracle = TruthRatio(feature_names=("costh", "phi"))
    whole = fit_likelihood(oracle, data, nominal, chunk=1 << 20)
    chunked = fit_likelihood(oracle, data, nominal, chunk=777)
    np.testing.assert_array_equal(chunked.values, whole.values)
    for part in ("stat", "nominal"):
        np.testing.assert_array_equal(chunked.covariance[part], whole.covariance[part])


def test_chunked_network_prediction_is_the_whole_prediction(samples):
    torch.manual_seed(2)
    model = ParametrizedClassifier(("mass", "costh", "phi"), ThetaPrior(), 16, 2)
    data = samples[0]
    whole, _ = ratio_sample(model, data, chunk=1 << 20)
    chunked, _ = ratio_sample(model, data, chunk=999)
    torch.testing.assert_close(chunked.x, whole.x, rtol=0, atol=0)
    lr_w, g_w = whole.log_ratio(THETA, grad=True)
    lr_c, g_c = chunked.log_ratio(THETA, grad=True)
    # float32 matrix products may block differently for other batch sizes: a few ulp of
    # float32 (1.2e-7 relative) is all a different chunking may change.
    np.testing.assert_allclose(lr_c, lr_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_c, g_w, rtol=1e-5, atol=1e-6)


def test_fit_columns():
    model = TruthRatio(feature_names=("costh", "phi"))
    assert fit_columns(model) == ("costh", "phi", "weight")
    assert fit_columns(TruthRatio(), nominal=True) == ("true_costh", "true_phi", "weight")


def test_fit_command_reads_lean_and_fits_the_same(tmp_path, samples, monkeypatch):
    import dyfit.data.io
    from dyfit.cli.fit import command

    asked = []

    def spy(spec, **kwargs):
        asked.append(kwargs.get("only"))
        return read_events(spec, **kwargs)

    monkeypatch.setattr(dyfit.data.io, "read_events", spy)
    data, nominal = samples
    write_events(data, tmp_path / "data.parquet")
    write_events(nominal, tmp_path / "nominal.parquet")
    args = ["--model", "truth", "--data", str(tmp_path / "data.parquet")]
    args += ["--nominal", str(tmp_path / "nominal.parquet"), "--json"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    oracle = TruthRatio()
    assert asked == [fit_columns(oracle), fit_columns(oracle, nominal=True)]
    lean = json.loads(result.stdout)
    expected = fit_likelihood(oracle, data, nominal)
    values = [lean["parameters"][n]["value"] for n in ("lambda", "mu", "nu")]
    np.testing.assert_array_equal(values, expected.values)
    assert lean["n_events"] == len(data) and lean["n_nominal"] == len(nominal)
