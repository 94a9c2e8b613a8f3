r"""Saving and loading ratio models: ``model.safetensors`` plus ``manifest.json``.

The weights file holds tensors only (safetensors: no code, nothing is unpickled)
and, in its header, the model's kind and architecture. The manifest records what
a reader needs to trust and reuse the model: format version, dyfit version, kind,
architecture (feature names, φ encoding, prior, layer sizes), the input scaler,
the training configuration and history, data provenance and the sha256 of the
weights file. :func:`load_model` refuses a checkpoint whose hash, architecture
or tensor names and shapes disagree, or whose format version is another one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dyfit import __version__
from dyfit.atomic import atomic_path, finite_json, write_text_atomic
from dyfit.errors import CheckpointError
from dyfit.networks import MODEL_KINDS, RatioModel
from dyfit.networks.cvae import CVAE
from dyfit.training.dctr import DCTRReweighter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS",
    "MANIFEST",
    "save_model",
    "load_model",
    "read_manifest",
]

FORMAT = "dyfit-ratio-model"
FORMAT_VERSION = 1
# kind -> class: the ratio models, the generative cVAE and its DCTR reweighter share one format
KINDS: dict[str, type] = {**MODEL_KINDS, CVAE.kind: CVAE, DCTRReweighter.kind: DCTRReweighter}
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(
    model: RatioModel | CVAE,
    run_dir: str | Path,
    *,
    history: dict[str, Any] | None = None,
    training_config: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``manifest.json`` into ``run_dir``, each atomically.

    Arguments:
        model: A :class:`~dyfit.networks.mlp.RatioModel` (classifier or moments) or a
            :class:`~dyfit.networks.cvae.CVAE`.
        run_dir: The folder, created if needed; an existing checkpoint is replaced.
        history: The training history (``TrainingHistory.to_dict()``), JSON-serialisable.
        training_config: The training configuration (``TrainingConfig.model_dump(mode="json")``).
        provenance: Where the training events came from (``source.describe()``).

    Returns:
        The manifest's path.
    """
    run_dir = Path(run_dir)
    architecture = model.architecture()
    scaler = model.scaler if isinstance(model, CVAE) else model.encoder
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": model.kind}
    header["architecture"] = json.dumps(architecture, sort_keys=True)
    with atomic_path(run_dir / WEIGHTS) as tmp:
        save_file(tensors, tmp, metadata=header)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dyfit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kind": model.kind,
        "architecture": architecture,
        "scaler": {
            "inputs": list(scaler.names),
            "mean": scaler.mean.tolist(),
            "std": scaler.std.tolist(),
        },
        "weights": {
            "file": WEIGHTS,
            "sha256": _sha256(run_dir / WEIGHTS),
            "tensors": {k: list(v.shape) for k, v in tensors.items()},
        },
        "training_config": training_config,
        "history": finite_json(history),
        "provenance": provenance,
    }
    path = run_dir / MANIFEST
    write_text_atomic(path, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return path


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of the checkpoint in ``run_dir``, with its format checked."""
    path = Path(run_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{run_dir} holds no {MANIFEST}; give a folder written by `dyfit train`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{path} is not valid JSON ({err}); the checkpoint is corrupted"
        ) from None
    except OSError as err:  # RUN_DIR is a file, manifest.json a folder, no permission, ...
        raise CheckpointError(
            f"{path} cannot be read ({err.strerror}); give a folder written by `dyfit train`"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dyfit ratio-model manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {manifest.get('format_version')!r}, this dyfit "
            f"({__version__}) reads version {FORMAT_VERSION}; retrain or use the matching dyfit"
        )
    return manifest


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> RatioModel | CVAE:
    """Rebuild the model saved in ``run_dir``, verified, in eval mode.

    Raises:
        CheckpointError: Missing files, another format version, a weights file whose
            sha256 differs from the manifest's, or a manifest whose kind, architecture
            or tensor names and shapes disagree with the weights.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    where = f"checkpoint {run_dir}"
    try:
        kind, architecture = manifest["kind"], manifest["architecture"]
        weights = run_dir / manifest["weights"]["file"]
        expected_hash, shapes = manifest["weights"]["sha256"], manifest["weights"]["tensors"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            f"{where}: manifest lacks {err}; the checkpoint is incomplete"
        ) from None
    if weights.parent != run_dir or weights.name in ("", ".", ".."):
        # a manifest names its weights, never a path: no reading outside the run folder
        raise CheckpointError(
            f"{where}: the manifest's weights file {manifest['weights']['file']!r} is not a "
            "file name in the run folder; the manifest was edited"
        )
    if not isinstance(kind, str) or kind not in KINDS:  # an edited kind may be a list
        raise CheckpointError(f"{where}: unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    if not weights.is_file():
        raise CheckpointError(f"{where}: weights file {weights.name} is missing")
    if _sha256(weights) != expected_hash:
        raise CheckpointError(
            f"{where}: {weights.name} does not match the sha256 in the manifest; "
            "it was modified or corrupted"
        )
    try:
        with safe_open(weights, framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{where}: cannot read {weights.name} ({err})") from None
    if header.get("kind") != kind or header.get("architecture") != json.dumps(
        architecture, sort_keys=True
    ):
        raise CheckpointError(
            f"{where}: the manifest's kind or architecture differs from the weights file's; "
            "the manifest was edited"
        )
    try:
        model = KINDS[kind](
            **{**architecture, "feature_names": tuple(architecture["feature_names"])}
        )
    except Exception as err:  # forged constructor arguments fail in any form: a bad checkpoint
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{where}: cannot rebuild the {kind} model ({why})") from None
    wanted = {k: list(v.shape) for k, v in model.state_dict().items()}
    found = {k: list(v.shape) for k, v in tensors.items()}
    if wanted != found or found != shapes:
        raise CheckpointError(
            f"{where}: tensor names or shapes differ from the {kind} architecture in the manifest"
        )
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()
