"""Checkpoints: save → load round trip, and refusal of tampered or foreign checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from dyfit.errors import CheckpointError
from dyfit.networks import AngularMomentRegressor, ParametrizedClassifier
from dyfit.physics.prior import ThetaPrior
from dyfit.training.checkpoint import FORMAT_VERSION, MANIFEST, WEIGHTS, load_model, save_model

torch.set_num_threads(1)

FEATURES = ("mass", "phi", "costh")


def trained_like(cls):
    """A model with non-default buffers and batch-norm statistics, as after training."""
    torch.manual_seed(0)
    model = cls(FEATURES, ThetaPrior(lambda_=(0.5, 1.5)), width=8, depth=2, phi_encoding="cossin")
    x = torch.randn(256, 3) + torch.tensor([5.0, 0.0, 0.0])
    model.encoder.fit(x)
    model.train()
    if cls is AngularMomentRegressor:
        model.fit_targets(torch.rand(256, 4))
        model.moments(x)  # updates the running statistics
        model.calibrate(x)
    else:
        model(x, torch.rand(256, 3))
    return model.eval(), x


@pytest.fixture(params=[ParametrizedClassifier, AngularMomentRegressor])
def saved(request, tmp_path):
    model, x = trained_like(request.param)
    save_model(
        model,
        tmp_path,
        history={"records": [{"val_loss": float("nan")}]},
        training_config={"seed": 1},
        provenance={"source": "toy", "cos_max": 0.5},
    )
    return model, x, tmp_path


def test_round_trip_gives_identical_outputs(saved):
    model, x, run_dir = saved
    loaded = load_model(run_dir)
    assert type(loaded) is type(model) and loaded.kind == model.kind
    assert loaded.feature_names == model.feature_names
    assert loaded.prior == model.prior and loaded.phi_encoding == "cossin"
    assert not loaded.training
    theta = torch.tensor([1.2, 0.1, -0.3])
    assert torch.equal(loaded.log_ratio(x, theta), model.log_ratio(x, theta))
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_manifest_records_what_it_promises(saved):
    model, _, run_dir = saved
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["kind"] == model.kind
    assert manifest["architecture"]["feature_names"] == list(FEATURES)
    assert manifest["scaler"]["mean"] == pytest.approx(model.encoder.mean.tolist())
    assert manifest["history"]["records"][0]["val_loss"] is None  # NaN → null: strict JSON
    assert manifest["provenance"]["source"] == "toy"
    assert sorted(p.name for p in run_dir.iterdir()) == [MANIFEST, WEIGHTS]  # no temp files


def edit_manifest(run_dir, change):
    manifest = json.loads((run_dir / MANIFEST).read_text())
    change(manifest)
    (run_dir / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["architecture"].update(width=16), "architecture"),
        (
            lambda m: m["architecture"].update(feature_names=["mass", "costh", "phi"]),
            "architecture",
        ),
        (lambda m: m["architecture"]["prior"].update(mu=[-1.0, 1.0]), "architecture"),
        (lambda m: m.update(kind="moments" if m["kind"] == "classifier" else "classifier"), "kind"),
        (lambda m: m["weights"].update(sha256="0" * 64), "sha256"),
        (lambda m: m["weights"]["tensors"].popitem(), "shapes"),
        (lambda m: m.update(format_version=FORMAT_VERSION + 1), "format version"),
        (lambda m: m.pop("weights"), "lacks"),
        (lambda m: m.update(kind="flow"), "unknown model kind"),
    ],
)
def test_tampered_manifest_is_refused(saved, change, message):
    _, _, run_dir = saved
    edit_manifest(run_dir, change)
    with pytest.raises(CheckpointError, match=message):
        load_model(run_dir)


def test_tampered_weights_are_refused(saved):
    _, _, run_dir = saved
    data = bytearray((run_dir / WEIGHTS).read_bytes())
    data[-5] ^= 0x01  # one bit of one float
    (run_dir / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(run_dir)


def test_swapped_weights_are_refused(tmp_path):
    """Weights of another model, with the manifest's hash updated to match, still disagree."""
    classifier, _ = trained_like(ParametrizedClassifier)
    regressor, _ = trained_like(AngularMomentRegressor)
    save_model(classifier, tmp_path / "a")
    save_model(regressor, tmp_path / "b")
    (tmp_path / "a" / WEIGHTS).write_bytes((tmp_path / "b" / WEIGHTS).read_bytes())
    other = json.loads((tmp_path / "b" / MANIFEST).read_text())["weights"]["sha256"]
    edit_manifest(tmp_path / "a", lambda m: m["weights"].update(sha256=other))
    with pytest.raises(CheckpointError, match="kind or architecture"):
        load_model(tmp_path / "a")


def test_missing_or_broken_files_are_refused(saved, tmp_path):
    _, _, run_dir = saved
    with pytest.raises(CheckpointError, match="holds no"):
        load_model(tmp_path / "nowhere")
    (run_dir / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(run_dir)
    (run_dir / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(run_dir)
