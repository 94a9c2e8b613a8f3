r"""A DCTR run: train against a saved cVAE, check it, save it; load it back for a fit.

Checks (:func:`dctr_diagnostics`), at a few θ: an independent classifier two-sample
test (:func:`~dyfit.training.two_sample.two_sample_auc`) of generated against simulated
events, before and after the generated events are weighted by r(x, θ) (0.5: the two
samples agree), the calibration E_cVAE[r | θ] = 1 with its standard error std(r)/√n,
and the weights' effective sample fraction (Σr)²/(n Σr²).

The reweighter records the sha256 of the cVAE's weights; :func:`load_reweighter` refuses
to pair it with another cVAE, whose errors it does not describe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dyfit.atomic import finite_json, write_text_atomic
from dyfit.errors import InputError
from dyfit.training.dctr import DCTRConfig, DCTRReweighter, train_dctr

__all__ = ["DIAGNOSTICS", "dctr_diagnostics", "train_dctr_run", "load_reweighter"]

DIAGNOSTICS = "dctr_diagnostics.json"
# θ where a Drell-Yan run is checked: θ0 and two corners of physical interest in the box
DY_CHECK_THETAS = ((1.0, 0.0, 0.0), (0.5, 0.2, -0.2), (1.5, -0.2, 0.2))


def dctr_diagnostics(
    reweighter: DCTRReweighter,
    cvae: Any,
    source: Any,
    thetas: ArrayLike,
    n: int,
    seed: int = 0,
    plot_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """At each θ of ``thetas`` (K, D): n generated and n simulated events; one record each
    with ``auc_before``/``auc_after`` (± ``auc_err``, the null standard error),
    ``mean_ratio`` ± ``mean_ratio_err`` and ``n_eff_fraction``; histograms to ``plot_dir``."""
    from dyfit.training.two_sample import two_sample_auc

    records = []
    for i, theta in enumerate(np.atleast_2d(np.asarray(thetas, dtype=np.float64))):
        rng = np.random.default_rng([seed, i])
        sim = source.simulate(n, theta, rng)
        sim.require(cvae.feature_names, "the simulated events")
        xs = sim.matrix(cvae.feature_names)
        xg = cvae.sample(theta, len(xs), rng)
        r = reweighter.ratio(xg, theta)
        ones = np.ones(len(xg))
        # the same seed before and after: the two tests differ only by the weights
        before, err = two_sample_auc(xg, ones, xs, np.random.default_rng([seed, i, 1]))
        after, err_w = two_sample_auc(xg, r, xs, np.random.default_rng([seed, i, 1]))
        records.append(
            {
                "theta": theta.tolist(),
                "n": len(xs),
                "auc_before": before,
                "auc_after": after,
                "auc_err": err,
                "auc_after_err": err_w,
                "mean_ratio": float(r.mean()),
                "mean_ratio_err": float(r.std(ddof=1) / np.sqrt(len(r))),
                "n_eff_fraction": float(r.sum() ** 2 / (len(r) * np.sum(r**2))),
            }
        )
        if plot_dir is not None:
            from dyfit.plots.cvae import plot_generated

            plot_generated(xg, xs, cvae.feature_names, Path(plot_dir) / f"dctr_theta{i}", r)
    return records


def train_dctr_run(
    config: DCTRConfig,
    cvae_dir: str | Path,
    run_dir: str | Path,
    *,
    workers: int = 1,
    check_events: int = 20_000,
    thetas: ArrayLike | None = None,
) -> tuple[DCTRReweighter, list[dict[str, Any]]]:
    """Train the reweighter of the cVAE in ``cvae_dir`` against the source it records,
    check it at ``thetas`` (default :data:`DY_CHECK_THETAS`), write the checkpoint,
    ``dctr_diagnostics.json`` and the histograms to ``run_dir``."""
    from dyfit.networks.cvae import CVAE
    from dyfit.training.checkpoint import load_model, read_manifest, save_model
    from dyfit.training.samples import simulator_from_provenance

    cvae = load_model(cvae_dir)
    if not isinstance(cvae, CVAE):
        raise InputError(f"{cvae_dir} holds a {cvae.kind} model; --cvae needs a `train-cvae` run")
    manifest = read_manifest(cvae_dir)
    provenance = manifest.get("provenance")
    if not provenance:
        raise InputError(f"{cvae_dir} records no event source; retrain it with `dyfit train-cvae`")
    source = simulator_from_provenance(provenance, workers)
    reweighter, history = train_dctr(config, cvae, source)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if thetas is None:
        thetas = DY_CHECK_THETAS if cvae.prior is not None else [cvae.bounds.mean(1)]
    checks = dctr_diagnostics(reweighter, cvae, source, thetas, check_events, config.seed, run_dir)
    save_model(
        reweighter,
        run_dir,
        history=history.to_dict() | {"diagnostics": checks},
        training_config=config.model_dump(mode="json"),
        provenance=provenance
        | {"cvae_run": str(cvae_dir), "cvae_sha256": manifest["weights"]["sha256"]},
    )
    text = json.dumps(finite_json(checks), indent=1, allow_nan=False)
    write_text_atomic(run_dir / DIAGNOSTICS, text + "\n")
    return reweighter, checks


def load_reweighter(dctr_dir: str | Path, cvae_dir: str | Path) -> DCTRReweighter:
    """The reweighter in ``dctr_dir``, checked to correct the cVAE in ``cvae_dir``."""
    from dyfit.training.checkpoint import load_model, read_manifest

    model = load_model(dctr_dir)
    if not isinstance(model, DCTRReweighter):
        raise InputError(f"{dctr_dir} holds a {model.kind} model; --dctr needs a `train-dctr` run")
    recorded = (read_manifest(dctr_dir).get("provenance") or {}).get("cvae_sha256")
    if recorded != read_manifest(cvae_dir)["weights"]["sha256"]:
        raise InputError(
            f"{dctr_dir} was trained against another cVAE than {cvae_dir}; "
            f"run `dyfit train-dctr --cvae {cvae_dir}`"
        )
    return model
