"""Fuzzing checkpoints: edited manifests, damaged weights, consistent forgeries.

Properties: whatever is done to ``manifest.json`` or ``model.safetensors``, load_model
gives a one-line CheckpointError or a model; a model is only returned with the saved
tensors unless the forger also rewrote the weights file and its hash (then it is a
valid checkpoint of another model); an edited provenance never gives a traceback.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from dyfit.errors import CheckpointError, InputError
from dyfit.networks import ParametrizedClassifier
from dyfit.physics.prior import ThetaPrior
from dyfit.training.checkpoint import MANIFEST, WEIGHTS, load_model, read_manifest, save_model
from dyfit.training.samples import simulator_from_provenance
from fuzz_cases import fuzz, report_cases, tried

torch.set_num_threads(1)
_report = report_cases("checkpoint: manifest", "checkpoint: weights")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    torch.manual_seed(0)
    model = ParametrizedClassifier(("mass", "phi", "costh"), ThetaPrior(), 4, 1, "cossin", True)
    run_dir = tmp_path_factory.mktemp("ckpt")
    save_model(model, run_dir, provenance={"source": "toy", "cos_max": 0.5})
    return run_dir, model.state_dict()


def load_or_refuse(run_dir: Path):
    try:
        return load_model(run_dir)
    except CheckpointError as err:
        assert "\n" not in str(err) and str(err)
        return None


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(-1e308, 1e308)
    | st.text(max_size=12) | st.sampled_from(["../model.safetensors", "/etc/passwd", "", "."]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=5,
)  # fmt: skip


def key_paths(obj, prefix=()) -> list[tuple]:
    """Every key path into a JSON object, e.g. ("weights", "sha256")."""
    out = []
    for k, v in obj.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += key_paths(v, (*prefix, k))
    return out


@fuzz(150)
@given(data=st.data(), delete=st.booleans())
def test_edited_manifests_are_refused_or_harmless(saved, data, delete):
    tried("checkpoint: manifest")
    run_dir, state = saved
    manifest = json.loads((run_dir / MANIFEST).read_text())
    edited = copy.deepcopy(manifest)
    path = data.draw(st.sampled_from(key_paths(manifest)))
    parent = edited
    for k in path[:-1]:
        parent = parent[k]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(run_dir / WEIGHTS, folder)
        Path(folder, MANIFEST).write_text(json.dumps(edited))
        model = load_or_refuse(Path(folder))
        if model is not None:  # only fields load_model does not need were edited
            assert same_state(model.state_dict(), state)
        try:  # what `dyfit fit` and `check-ratio` do with the provenance
            simulator_from_provenance(read_manifest(folder).get("provenance") or {})
        except InputError as err:
            assert "\n" not in str(err)


@fuzz(60)
@given(raw=st.binary(max_size=300))
def test_any_manifest_bytes_are_one_line(saved, raw):
    tried("checkpoint: manifest")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, MANIFEST).write_bytes(raw)
        assert load_or_refuse(Path(folder)) is None


@fuzz(80)
@given(
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.none() | st.floats(0, 1),
    rehash=st.booleans(),
)
def test_damaged_weights_are_refused(saved, flips, cut, rehash):
    """Without a new hash any change is refused; with one, the file must still parse."""
    tried("checkpoint: weights")
    run_dir, state = saved
    original = (run_dir / WEIGHTS).read_bytes()
    data = bytearray(original)
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    if cut is not None:
        data = data[: int(cut * len(data))]
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, WEIGHTS).write_bytes(bytes(data))
        manifest = json.loads((run_dir / MANIFEST).read_text())
        if rehash:
            manifest["weights"]["sha256"] = sha256(Path(folder, WEIGHTS))
        Path(folder, MANIFEST).write_text(json.dumps(manifest))
        model = load_or_refuse(Path(folder))
    if not rehash and bytes(data) != original:  # two equal flips of one byte undo each other
        assert model is None
    elif model is not None and not same_state(model.state_dict(), state):
        assert model.kind == "classifier"  # the forger's weights, in the recorded architecture


@fuzz(60)
@given(key=st.sampled_from(["width", "depth", "phi_encoding", "batch_norm", "prior",
                            "feature_names"]), value=json_values)  # fmt: skip
def test_consistent_forged_architectures_are_refused_or_rebuilt(saved, key, value):
    """Manifest, weights header and hash all rewritten together: still no traceback."""
    tried("checkpoint: weights")
    run_dir, _ = saved
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["architecture"][key] = value
    if key in ("width", "depth") and isinstance(value, int) and abs(value) > 64:
        return  # a forged width of 10^18 is a memory bomb, not a parsing problem
    with tempfile.TemporaryDirectory() as folder, safe_open(run_dir / WEIGHTS, "pt") as f:
        header = {**f.metadata(), "architecture": json.dumps(manifest["architecture"],
                                                             sort_keys=True)}  # fmt: skip
        save_file({k: f.get_tensor(k) for k in f.keys()}, Path(folder, WEIGHTS), header)  # noqa: SIM118
        manifest["weights"]["sha256"] = sha256(Path(folder, WEIGHTS))
        Path(folder, MANIFEST).write_text(json.dumps(manifest))
        model = load_or_refuse(Path(folder))
    assert model is None or model.kind == "classifier"
