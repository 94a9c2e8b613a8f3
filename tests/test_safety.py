"""Safety: nothing dyfit reads can run code, and a checkpoint reads nothing outside its folder.

- the source holds no pickle, no ``eval``/``exec``, no ``torch.load`` without
  ``weights_only=True``, no unsafe ``yaml.load``, no ``np.load(..., allow_pickle=True)``
  (code only: comments and docstrings may name them);
- a pickle planted in a checkpoint folder (as the weights, or beside them) is never
  unpickled: its payload would create a marker file, which must never appear;
- a manifest naming weights outside the run folder (``..``, absolute) is refused;
- configuration models hold no file paths (if one is added, this test asks for the
  run-folder check the manifest's weights file has).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import pickle
import pkgutil
import re
import shutil
import tokenize
from pathlib import Path

import pytest
import torch

import dyfit
from dyfit.config import StrictModel
from dyfit.errors import CheckpointError
from dyfit.networks import ParametrizedClassifier
from dyfit.physics.prior import ThetaPrior
from dyfit.training.checkpoint import MANIFEST, WEIGHTS, load_model, save_model

torch.set_num_threads(1)
SRC = Path(dyfit.__file__).parent

FORBIDDEN = {
    "pickle": re.compile(r"\b(c?[Pp]ickle|dill|joblib|marshal|shelve)\b"),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\s*\("),
    "torch.load without weights_only=True": re.compile(
        r"torch\.load\((?![^)]*weights_only\s*=\s*True)[^)]*\)"
    ),
    "unsafe yaml.load": re.compile(r"yaml\.(unsafe_)?load\((?![^)]*SafeLoader)[^)]*\)"),
    "np.load with allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "shell=True": re.compile(r"shell\s*=\s*True"),
}


def code_only(path: Path) -> str:
    """The module's source with comments dropped and string literals (docstrings) emptied."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    kept = [
        t._replace(string='""') if t.type == tokenize.STRING else t
        for t in tokens
        if t.type != tokenize.COMMENT
    ]
    return tokenize.untokenize(kept)


def test_the_source_has_no_unsafe_load_or_eval() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        code = code_only(path)
        found += [f"{path.relative_to(SRC)}: {what}" for what, rx in FORBIDDEN.items()
                  if rx.search(code)]  # fmt: skip
    assert found == []


def test_the_scan_finds_what_it_looks_for(tmp_path) -> None:
    """The patterns catch each form (a scan that cannot fail proves nothing)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nx = eval('1')\nexec('y=1')\nm = torch.load(f)\n"
        "d = yaml.load(s)\na = np.load(f, allow_pickle=True)\nsubprocess.run(c, shell=True)\n"
        "ok = torch.load(f, weights_only=True)\nmodel.eval()\n# pickle in a comment\n"
    )
    code = code_only(bad)
    assert all(rx.search(code) for rx in FORBIDDEN.values())
    good = tmp_path / "good.py"
    good.write_text('"""pickle, eval( in a docstring."""\nm = torch.load(f, weights_only=True)\n')
    assert not any(rx.search(code_only(good)) for rx in FORBIDDEN.values())


class Payload:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def run_dir(tmp_path) -> Path:
    torch.manual_seed(0)
    model = ParametrizedClassifier(("mass", "costh"), ThetaPrior(), 4, 1, "raw", False)
    save_model(model, tmp_path / "run")
    return tmp_path / "run"


def rewrite_manifest(run_dir: Path, weights_file: str, payload_path: Path) -> None:
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["weights"]["file"] = weights_file
    manifest["weights"]["sha256"] = hashlib.sha256(payload_path.read_bytes()).hexdigest()
    (run_dir / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("where", ["as-weights", "as-model.pt", "beside"])
def test_a_planted_pickle_is_never_executed(run_dir, tmp_path, where, monkeypatch) -> None:
    marker = tmp_path / "executed"
    payload = pickle.dumps(Payload(marker))
    # torch.save writes a zip holding a pickle: the form a .pt checkpoint takes
    torch.save({"w": Payload(marker)}, tmp_path / "planted.pt")
    assert not marker.exists()
    if where == "as-weights":
        (run_dir / WEIGHTS).write_bytes(payload)
        rewrite_manifest(run_dir, WEIGHTS, run_dir / WEIGHTS)
    elif where == "as-model.pt":
        shutil.copy(tmp_path / "planted.pt", run_dir / "model.pt")
        rewrite_manifest(run_dir, "model.pt", run_dir / "model.pt")
    else:
        shutil.copy(tmp_path / "planted.pt", run_dir / "model.pt")
        (run_dir / "model.pkl").write_bytes(payload)
    if where == "beside":
        assert load_model(run_dir).kind == "classifier"  # the planted files are ignored
    else:
        with pytest.raises(CheckpointError, match="cannot read"):
            load_model(run_dir)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: the marker proves execution when it happens
    assert marker.exists()


@pytest.mark.parametrize(
    "name", ["../outside/model.safetensors", "ABSOLUTE", "sub/model.safetensors"]
)
def test_weights_outside_the_run_folder_are_refused(run_dir, tmp_path, name) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(run_dir / WEIGHTS, outside / WEIGHTS)
    (run_dir / "sub").mkdir()
    shutil.copy(run_dir / WEIGHTS, run_dir / "sub" / WEIGHTS)
    name = str(outside / WEIGHTS) if name == "ABSOLUTE" else name
    rewrite_manifest(run_dir, name, outside / WEIGHTS)  # a valid hash: only the path is wrong
    with pytest.raises(CheckpointError, match="is not a file name in the run folder"):
        load_model(run_dir)


def config_models() -> list[type[StrictModel]]:
    """Every StrictModel subclass in dyfit (every module imported)."""
    for info in pkgutil.walk_packages([str(SRC)], "dyfit."):
        if not info.name.endswith("__main__"):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional extra (pythia8mc, dask) that is not installed
                continue
    out, todo = [], [StrictModel]
    while todo:
        cls = todo.pop()
        out += cls.__subclasses__()
        todo += cls.__subclasses__()
    return [c for c in out if c.__module__.startswith("dyfit.")]


def test_configuration_paths_are_confined_to_the_config_folder(tmp_path) -> None:
    """Only DataSpec names files, and a config file cannot point outside its own folder."""
    from dyfit.data.recipe import PATH_FIELDS, DataSpec, load_spec, merge_spec
    from dyfit.errors import ConfigError

    models = config_models()
    assert {"TrainingConfig", "GeneratorConfig", "SpectrometerConfig"} <= {
        c.__name__ for c in models
    }
    pathlike = re.compile(r"(file|path|dir|folder)s?$|^(file|path|dir|output|input|nominal)$")
    found = {
        (c.__name__, name)
        for c in models
        for name, field in c.model_fields.items()
        if pathlike.search(name) or "Path" in str(field.annotation)
    }
    assert found == {(DataSpec.__name__, k) for k in PATH_FIELDS}

    (tmp_path / "runs").mkdir()
    inside = tmp_path / "runs" / "cfg.toml"
    inside.write_text('[data]\nfile = "d.root:tree"\nnominal = "sub/../n.parquet"\n')
    spec = load_spec(str(inside))
    assert spec.file == f"{tmp_path / 'runs' / 'd.root'}:tree"
    assert spec.nominal == str(tmp_path / "runs" / "n.parquet")
    for bad in ("../secret.parquet", "/etc/passwd", "sub/../../x.csv"):
        inside.write_text(f'[data]\nfile = "{bad}"\n')
        with pytest.raises(ConfigError, match="outside the config's folder"):
            load_spec(str(inside))
    (tmp_path / "runs" / "link").symlink_to(tmp_path)
    inside.write_text('[data]\nnominal = "link/n.parquet"\n')
    with pytest.raises(ConfigError, match="outside"):
        load_spec(str(inside))
    # the command line may name any file
    assert merge_spec(None, file="/elsewhere/d.parquet").file == "/elsewhere/d.parquet"
