"""Fuzzing configuration input: TOML files, θ and prior strings, column maps.

Properties: any bytes or any TOML document given as a config gives a validated model or
a one-line ConfigError (unknown keys and wrong types included); every valid setting that
is written to TOML loads back unchanged; any text given as θ, prior or column map gives
a value or a one-line InputError, and valid θ strings parse exactly.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dyfit.cli.options import parse_columns
from dyfit.config import StrictModel, load_toml
from dyfit.demo import DemoConfig
from dyfit.detector import SpectrometerConfig
from dyfit.errors import ConfigError, InputError
from dyfit.physics.generator import GeneratorConfig
from dyfit.physics.prior import ThetaPrior, parse_prior, parse_theta
from dyfit.training.config import TrainingConfig
from fuzz_cases import fuzz, report_cases, tried

_report = report_cases("config: TOML", "config: round trip", "config: theta/prior/columns")

MODELS = {
    "train": (TrainingConfig, None),
    "generator": (GeneratorConfig, "generator"),
    "detector": (SpectrometerConfig, "detector"),
    "demo": (DemoConfig, None),
}


def toml_value(v) -> str:
    """A small TOML encoder (tomllib only reads): scalars, arrays, inline tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, int | str):
        return json.dumps(v)  # a JSON string with \\u escapes is a TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(data: dict, table: str | None) -> str:
    lines = [f"[{table}]"] if table else []
    return "\n".join(lines + [f"{json.dumps(k)} = {toml_value(v)}" for k, v in data.items()]) + "\n"


def load_text(text: str | bytes, model: type[StrictModel], table: str | None) -> StrictModel | None:
    """The model from a config file holding ``text``, or None after a one-line ConfigError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        try:
            return load_toml(path, model, table=table)
        except ConfigError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            return None


@fuzz(60)
@given(which=st.sampled_from(sorted(MODELS)), raw=st.binary(max_size=200))
def test_any_bytes_give_a_model_or_one_line(which, raw):
    tried("config: TOML")
    model, table = MODELS[which]
    out = load_text(raw, model, table)
    assert out is None or isinstance(out, model)


scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.sampled_from([1e308, -1e308]),
    st.text(max_size=6),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=6,
)


@fuzz(150)
@given(data=st.data(), which=st.sampled_from(sorted(MODELS)))
def test_any_toml_document_gives_a_model_or_one_line(data, which):
    tried("config: TOML")
    model, table = MODELS[which]
    odd = st.sampled_from(["a\nb", "x.y", "", " ", "\x00", "lambda"])  # unknown everywhere
    keys = st.sampled_from(sorted(model.model_fields)) | st.text(max_size=8) | odd
    doc = data.draw(st.dictionaries(keys, values, max_size=4))
    out = load_text(toml_document(doc, table), model, table)
    if set(doc) - set(model.model_fields):
        assert out is None  # an unknown key is always refused, whatever else is wrong
    else:
        assert out is None or isinstance(out, model)


def test_a_folder_or_a_missing_file_is_one_line(tmp_path):
    for path, message in [(tmp_path, "cannot be read"), (tmp_path / "no.toml", "does not exist")]:
        with pytest.raises(ConfigError, match=message) as err:
            load_toml(path, TrainingConfig)
        assert "\n" not in str(err.value)


# The valid direction: settings inside every documented range load back unchanged.
positive = st.integers(1, 10**7)
training = st.fixed_dictionaries(
    {},
    optional={
        "estimator": st.sampled_from(["classifier", "moments"]),
        "features": st.lists(st.sampled_from(["mass", "pT", "xF", "phi", "costh"]), min_size=1),
        "phi_encoding": st.sampled_from(["raw", "cossin"]),
        "width": positive,
        "depth": st.integers(0, 20),
        "batch_norm": st.booleans(),
        "events_per_epoch": st.integers(2, 10**9),
        "epochs": positive,
        "learning_rate": st.floats(1e-300, 1e300),
        "weight_decay": st.floats(0.0, 1e300),
        "schedule": st.sampled_from(["plateau", "cosine", "none"]),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "device": st.sampled_from(["cpu", "cuda", "auto"]),
        "prior": st.fixed_dictionaries(
            {"mu": st.tuples(st.floats(-1e300, -1e-300), st.floats(1e-300, 1e300))}
        ),
    },
)
generator = st.fixed_dictionaries(
    {},
    optional={
        "beam_energy": st.floats(60.0, 1e6),  # sqrt(s) above the default 10 GeV mass
        "target": st.sampled_from(["p", "d"]),
        "mass_range": st.tuples(st.floats(0.5, 4.0), st.floats(4.5, 5.0)),
        "xf_range": st.tuples(st.floats(-0.9, -0.01), st.floats(0.01, 0.9)),
        "pt_max": st.floats(1e-3, 1e3),
    },
)


@fuzz(80)
@given(which=st.sampled_from(["train", "generator"]), data=st.data())
def test_valid_settings_are_never_refused(which, data):
    tried("config: round trip")
    model, table = MODELS[which]
    settings = data.draw(training if which == "train" else generator)
    loaded = load_text(toml_document(settings, table), model, table)
    assert loaded == model.model_validate(settings)
    dumped = loaded.model_dump(mode="json", by_alias=True)  # and the dump loads back again
    dumped = {k: v for k, v in dumped.items() if v is not None}  # TOML has no null
    assert load_text(toml_document(dumped, table), model, table) == loaded


# --- θ, prior and column strings --------------------------------------------------------


@fuzz(200)
@given(text=st.text() | st.lists(st.sampled_from(list("0123456789.,=e+- ") + ["lambda", "mu",
                                                                              "nu", "nan", "inf"]),
                                 max_size=12).map("".join))  # fmt: skip
def test_any_theta_text_parses_or_is_one_line(text):
    tried("config: theta/prior/columns")
    try:
        theta = parse_theta(text)
    except InputError as err:
        assert "\n" not in str(err)
        return
    assert theta.shape == (3,) and np.all(np.isfinite(theta))


finite = st.floats(allow_nan=False, allow_infinity=False)


@fuzz(100)
@given(
    theta=st.tuples(finite, finite, finite), keyed=st.booleans(), order=st.permutations(range(3))
)
def test_valid_theta_strings_parse_exactly(theta, keyed, order):
    tried("config: theta/prior/columns")
    names = ("lambda", "mu", "nu")
    if keyed:
        text = " , ".join(f"{names[i]}={theta[i]!r}" for i in order)
    else:
        text = ",".join(repr(t) for t in theta)
    assert parse_theta(text).tobytes() == np.array(theta, dtype=np.float64).tobytes()


@fuzz(150)
@given(text=st.text(), which=st.sampled_from(["prior", "columns"]))
def test_prior_and_column_text_parse_or_are_one_line(text, which):
    tried("config: theta/prior/columns")
    try:
        out = parse_prior(text) if which == "prior" else parse_columns(text)
    except InputError as err:  # ConfigError is an InputError
        assert "\n" not in str(err)
        return
    assert isinstance(out, ThetaPrior) if which == "prior" else isinstance(out, dict)
