"""The event commands: generate, simulate-detector, plot-events.

The simulation and the detector are replaced by small stand-ins that record what
the command passed them, so these tests check the CLI's own work (parsing, checks,
files, messages); one test runs the real chain end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from dyfit.cli.main import main
from dyfit.config import StrictModel
from dyfit.data.events import EventTable
from dyfit.data.io import read_events, write_events
from dyfit.physics.angular import sample_angles
from dyfit.physics.kinematics import beam_target, dilepton_observables, leptons_from_collins_soper
from dyfit.toy import ToyExperiment

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, folder: Path, before: set[str], fragment: str) -> None:
    """Exit code 2, exactly one stderr line naming the problem, and no file written."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dyfit: error: "), err
    assert fragment in lines[0]
    assert {p.name for p in folder.iterdir()} == before


class GeneratorConfig(StrictModel):
    beam_energy: float = 120.0
    target: str = "p"


class SpectrometerConfig(StrictModel):
    resolution: float = 1.0


@pytest.fixture
def fakes(monkeypatch) -> dict[str, list]:
    """Stand-ins for dyfit.simulation, dyfit.physics.generator and dyfit.detector."""
    calls: dict[str, list] = {"simulate": [], "simulate_detector": []}

    def simulate(n_events, *, theta=None, prior=None, generator=None, detector=None,
                 smearing=True, seed=0, workers=1, progress=False):  # fmt: skip
        calls["simulate"].append(dict(locals()))
        rng = np.random.default_rng(seed)
        thetas = prior.sample(n_events, rng) if prior is not None else theta
        return ToyExperiment().simulate(n_events, thetas, rng)

    def simulate_detector(truth, config, rng, *, beam_energy=120.0, smearing=True):
        calls["simulate_detector"].append(dict(config=config, beam=beam_energy, smearing=smearing))
        lp = truth.matrix([f"true_mup_{c}" for c in "E px py pz".split()])
        lm = truth.matrix([f"true_mum_{c}" for c in "E px py pz".split()])
        obs = dilepton_observables(lp, lm, *beam_target(beam_energy))
        kept = np.abs(obs["costh"]) < 0.5
        return truth.with_columns(obs).select(kept), f"stage table: {kept.sum()} kept"

    for name, attrs in {
        "dyfit.simulation": {"simulate": simulate},
        "dyfit.physics.generator": {"GeneratorConfig": GeneratorConfig},
        "dyfit.detector": {
            "SpectrometerConfig": SpectrometerConfig,
            "simulate_detector": simulate_detector,
        },
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return calls


# --- generate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, theta",
    [
        ([], (1.0, 0.0, 0.0)),
        (["--theta", "1,0,0.2"], (1.0, 0.0, 0.2)),
        (["--theta", "lambda=0.5,nu=0.1"], (0.5, 0.0, 0.1)),
        (["--lambda", "0.8", "--mu", "0.05"], (0.8, 0.05, 0.0)),
    ],
)
def test_generate_fixed_theta(tmp_path, capsys, fakes, args, theta) -> None:
    out = tmp_path / "events.parquet"
    code, stdout, _ = run(
        capsys, "generate", "--events", "300", *args, "--seed", "4", "-o", str(out)
    )
    assert code == 0 and "wrote 300 events" in stdout
    (call,) = fakes["simulate"]
    assert call["n_events"] == 300 and call["prior"] is None and call["seed"] == 4
    np.testing.assert_array_equal(call["theta"], theta)
    assert call["smearing"] and not call["progress"]
    assert call["generator"] is None and call["detector"] is None
    table = read_events(out)
    assert len(table) == 300
    np.testing.assert_array_equal(table.matrix(["theta_lambda", "theta_mu", "theta_nu"])[0], theta)


def test_generate_prior_sample(tmp_path, capsys, fakes) -> None:
    out = tmp_path / "prior.csv"
    code, *_ = run(capsys, "generate", "-n", "200", "--prior", "lambda=0:2,mu=-0.3:0.3",
                   "--no-smearing", "--seed", "7", "-o", str(out))  # fmt: skip
    assert code == 0
    (call,) = fakes["simulate"]
    assert call["theta"] is None and not call["smearing"] and call["seed"] == 7
    np.testing.assert_array_equal(call["prior"].bounds, [[0, 2], [-0.3, 0.3], [-0.5, 0.5]])
    lam = read_events(out)["theta_lambda"]
    assert lam.min() >= 0.0 and lam.max() <= 2.0 and np.unique(lam).size == 200


def test_generate_config_and_target(tmp_path, capsys, fakes) -> None:
    config = tmp_path / "sim.toml"
    config.write_text("[generator]\nbeam_energy = 100.0\n\n[detector]\nresolution = 0.5\n")
    out = tmp_path / "events.root"
    code, *_ = run(capsys, "generate", "-n", "50", "--config", str(config), "--target", "d",
                   "-o", str(out))  # fmt: skip
    assert code == 0 and out.exists()
    (call,) = fakes["simulate"]
    assert call["generator"] == GeneratorConfig(beam_energy=100.0, target="d")
    assert call["detector"] == SpectrometerConfig(resolution=0.5)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--events", "0"], "--events must be a positive number"),
        (["--events", "-5"], "got -5"),
        (["--theta", "lambda=1,foo=2"], "unknown theta key(s) foo"),
        (["--theta", "1,0"], "cannot parse theta"),
        (["--lambda", "-1.5"], "negative angular density"),
        (["--theta", "1,1.5,0"], "negative angular density"),
        (["--prior", "lambda=0:2", "--theta", "1,0,0"], "either --prior or a fixed theta"),
        (["--prior", "lambda=2:0"], "low < high"),
        (["--theta", "1,0,0", "--mu", "0.1"], "either with --theta or with"),
        (["--config", "absent.toml"], "does not exist"),
        (["--config", "BAD"], "extra_key"),
        (["-o", "events.txt"], "cannot tell the event file format"),
    ],
)
def test_generate_refuses_bad_input(tmp_path, capsys, fakes, args, fragment) -> None:
    (tmp_path / "bad.toml").write_text("[generator]\nextra_key = 1\n")
    args = [str(tmp_path / "bad.toml") if a == "BAD" else a for a in args]
    before = {p.name for p in tmp_path.iterdir()}
    out = ["-o", str(tmp_path / "events.parquet")] if "-o" not in args else []
    args = [str(tmp_path / a) if a == "events.txt" else a for a in args]
    argv = ["generate"] + (["--events", "10"] if "--events" not in args else []) + args + out
    code, _, err = run(capsys, *argv)
    assert_refused(code, err, tmp_path, before, fragment)
    assert fakes["simulate"] == []


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


def test_refusal_end_to_end_in_a_subprocess(tmp_path) -> None:
    out = tmp_path / "events.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "dyfit", "generate", "--events", "0", "-o", str(out)],
        capture_output=True, text=True, env=subprocess_env(), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "dyfit: error: --events must be a positive number of events, got 0\n"
    assert list(tmp_path.iterdir()) == []


def test_version_is_fast_and_imports_nothing_heavy() -> None:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dyfit", "--version"], capture_output=True,
                          text=True, env=subprocess_env(), timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "0.1.0" in proc.stdout
    assert time.perf_counter() - start < 1.0
    check = (
        "import sys, dyfit.cli.main, dyfit.cli.generate, dyfit.cli.simulate_detector, "
        "dyfit.cli.plot_events, dyfit.cli.fit, dyfit.cli.fit_differential, dyfit.cli.study, "
        "dyfit.cli.compare; heavy = {'torch', 'matplotlib', 'numpy', 'pyarrow'} & "
        "set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", check], check=True, env=subprocess_env(), timeout=60)


def test_generate_with_the_real_simulation(tmp_path, capsys) -> None:
    out = tmp_path / "events.parquet"
    code, _, err = run(capsys, "generate", "-n", "200", "--theta", "1,0,0.1", "-o", str(out))
    assert code == 0, err
    table = read_events(out)
    assert len(table) == 200
    table.require(["mass", "pT", "xF", "phi", "costh", "x1", "x2", "true_costh", "true_phi"])
    assert table.meta["theta"] == [1.0, 0.0, 0.1] and table.meta["n_generated"] > 200


# --- simulate-detector ------------------------------------------------------------------


def truth_table(n: int = 400, seed: int = 5) -> tuple[EventTable, np.ndarray]:
    """Truth μ+μ- four-vectors with known Collins-Soper cosθ (returned too)."""
    rng = np.random.default_rng(seed)
    mass, pt, pz = rng.uniform(4.5, 8.0, n), rng.gamma(2.0, 0.5, n), rng.uniform(40.0, 100.0, n)
    azimuth = rng.uniform(-np.pi, np.pi, n)
    q = np.stack([np.sqrt(mass**2 + pt**2 + pz**2), pt * np.cos(azimuth),
                  pt * np.sin(azimuth), pz], axis=-1)  # fmt: skip
    costh, phi = sample_angles((1.0, 0.0, 0.0), n, rng)
    lp, lm = leptons_from_collins_soper(q, costh, phi, *beam_target(120.0))
    cols = {f"true_{lep}_{c}": v[:, i] for lep, v in (("mup", lp), ("mum", lm))
            for i, c in enumerate(("E", "px", "py", "pz"))}  # fmt: skip
    return EventTable(cols, {"theta": [1.0, 0.0, 0.0]}), costh


def test_simulate_detector_writes_the_accepted_events(tmp_path, capsys, fakes) -> None:
    truth, costh = truth_table()
    truth_file = write_events(truth, tmp_path / "truth.parquet")
    out = tmp_path / "reco.parquet"
    code, stdout, _ = run(capsys, "simulate-detector", "--truth", str(truth_file), "-o", str(out),
                          "--no-smearing", "--beam-energy", "120", "--seed", "3")  # fmt: skip
    assert code == 0
    n_kept = int(np.sum(np.abs(costh) < 0.5))  # the stand-in keeps |cosθ| < 0.5
    assert f"accepted {n_kept} of 400 events" in stdout and "stage table" in stdout
    (call,) = fakes["simulate_detector"]
    assert call == {"config": SpectrometerConfig(), "beam": 120.0, "smearing": False}
    reco = read_events(out)
    assert len(reco) == n_kept
    assert reco.meta["n_generated"] == 400 and reco.meta["theta"] == [1.0, 0.0, 0.0]
    assert reco.meta["seed"] == 3 and reco.meta["acceptance"] == pytest.approx(n_kept / 400)


def test_simulate_detector_maps_columns(tmp_path, capsys, fakes) -> None:
    truth, _ = truth_table(50)
    renamed = EventTable({n.replace("true_", "gen_"): v for n, v in truth.columns.items()})
    truth_file = write_events(renamed, tmp_path / "truth.csv")
    mapping = ",".join(f"{n}={n.replace('true_', 'gen_')}" for n in truth.names)
    code, *_ = run(capsys, "simulate-detector", "--truth", str(truth_file), "--columns", mapping,
                   "-o", str(tmp_path / "reco.csv"))  # fmt: skip
    assert code == 0 and len(fakes["simulate_detector"]) == 1


def test_simulate_detector_drops_invalid_on_request(tmp_path, capsys, fakes) -> None:
    truth, _ = truth_table(100)
    truth.columns["true_mum_pz"][[3, 9]] = np.nan
    truth_file = write_events(truth, tmp_path / "truth.parquet")
    code, _, err = run(capsys, "simulate-detector", "--truth", str(truth_file), "--drop-invalid",
                       "-o", str(tmp_path / "reco.parquet"))  # fmt: skip
    assert code == 0
    assert err.strip() == "dyfit: warning: dropped 2 of 100 events with NaN or inf (true_mum_pz: 2)"


def _damaged(kind: str, folder: Path) -> Path:
    truth, _ = truth_table(100)
    if kind == "missing-column":
        truth = EventTable({k: v for k, v in truth.columns.items() if k != "true_mum_pz"})
    if kind == "nan":
        truth.columns["true_mup_E"][0] = np.inf
    path = write_events(truth, folder / "truth.parquet")
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(3000))
    return path


@pytest.mark.parametrize(
    "kind, extra, fragment",
    [
        ("truncated", [], "truncated or corrupted"),
        ("random", [], "cannot be read as parquet"),
        ("missing-column", [], "lacks truth column(s) true_mum_pz; map them with --columns"),
        ("nan", [], "1 of 100 events with NaN or inf (true_mup_E: 1)"),
        ("missing-file", [], "no such file"),
        ("ok", ["--columns", "true_mup_E"], "cannot parse --columns entry"),
        ("ok", ["--columns", "true_mup_E=nope"], "has no column nope (for true_mup_E)"),
        ("ok", ["--beam-energy", "0"], "--beam-energy must be positive"),
    ],
)
def test_simulate_detector_refuses_bad_input(tmp_path, capsys, fakes, kind, extra, fragment):
    truth = _damaged(kind, tmp_path)
    if kind == "missing-file":
        truth.unlink()
    before = {p.name for p in tmp_path.iterdir()}
    argv = ["simulate-detector", "--truth", str(truth), "-o", str(tmp_path / "reco.parquet")]
    code, _, err = run(capsys, *argv, *extra)
    assert_refused(code, err, tmp_path, before, fragment)
    assert fakes["simulate_detector"] == []


# --- plot-events ------------------------------------------------------------------------


def test_plot_events_command(tmp_path, capsys) -> None:
    rng = np.random.default_rng(1)
    true_mass = 4.5 + rng.exponential(1.0, 2000)
    table = EventTable(
        {"true_mass": true_mass, "mass": true_mass * (1 + 0.02 * rng.normal(size=2000))}
    )
    events = write_events(table, tmp_path / "events.root")
    code, stdout, err = run(capsys, "plot-events", f"{events}:events", "-o", str(tmp_path / "figs"))
    assert code == 0
    written = sorted(Path(line).name for line in stdout.split())
    assert written == sorted(f"{s}.{e}" for s in ("reco_vs_truth_mass", "mass_resolution")
                             for e in ("png", "pdf"))  # fmt: skip
    assert all((tmp_path / "figs" / name).exists() for name in written)
    assert err.strip().splitlines() == [
        "dyfit: warning: acceptance plot skipped: it needs true_costh, true_phi and metadata theta "
        "(one fixed value) and n_generated, which a prior sample or an external file lacks"
    ]
    before = {p.name for p in tmp_path.iterdir()}
    code, _, err = run(
        capsys, "plot-events", str(tmp_path / "absent.csv"), "-o", str(tmp_path / "x")
    )
    assert_refused(code, err, tmp_path, before, "absent.csv: no such file")
