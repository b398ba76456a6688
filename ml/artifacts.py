"""A trained model on disk: spec JSON, canonical weights (safetensors), ONNX export, manifest.

Models trained by TensorFlow also have a ``.keras`` file, written by the worker with Keras.

Nothing here runs code on load: weights are plain tensors loaded into a model rebuilt from
the spec, and every file is checked against the sha256 in the manifest.
"""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from safetensors.numpy import load_file, save_file

from ml.datasets import Preprocessing
from ml.onnx_export import export
from ml.serving import Predictor
from ml.spec import JobSpec

FORMAT = "capas-model/1"
SPEC_FILE, WEIGHTS_FILE, ONNX_FILE, KERAS_FILE, MANIFEST_FILE = (
    "spec.json", "weights.safetensors", "model.onnx", "model.keras", "manifest.json")
# The downloadable formats and their files; a version has those whose file its manifest lists.
FORMAT_FILES = {"onnx": ONNX_FILE, "safetensors": WEIGHTS_FILE, "keras": KERAS_FILE}


class ArtifactIntegrityError(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(directory: Path, manifest: Mapping[str, Any], filename: str) -> Path:
    path = directory / filename
    expected = manifest["files"][filename]
    if not path.is_file() or sha256_of(path) != expected:
        raise ArtifactIntegrityError(f"{filename} does not match its sha256 in the manifest")
    return path


def available_formats(manifest: Mapping[str, Any]) -> list[str]:
    return [fmt for fmt, filename in FORMAT_FILES.items() if filename in manifest["files"]]


def write_model(directory: Path, spec: JobSpec, weights: dict[str, np.ndarray],
                preprocessing: Preprocessing, manifest: Mapping[str, Any],
                extra_files: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write the four files; return the manifest completed with the files' sha256.

    `extra_files` name files the caller already wrote into `directory` (a framework's own
    format); they are hashed and listed with the others.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SPEC_FILE).write_text(spec.model_dump_json(indent=2))
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()},
              str(directory / WEIGHTS_FILE))
    onnx.save(export(spec.model, weights, preprocessing), str(directory / ONNX_FILE))
    files = {name: sha256_of(directory / name)
             for name in (SPEC_FILE, WEIGHTS_FILE, ONNX_FILE, *extra_files)}
    complete = {"format": FORMAT, **manifest, "preprocessing": preprocessing.to_json(),
                "files": files}
    (directory / MANIFEST_FILE).write_text(json.dumps(complete, indent=2))
    return complete


def read_manifest(directory: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((directory / MANIFEST_FILE).read_text())
    return manifest


def read_weights(directory: Path, manifest: Mapping[str, Any]) -> dict[str, np.ndarray]:
    weights: dict[str, np.ndarray] = load_file(str(verify(directory, manifest, WEIGHTS_FILE)))
    return weights


def export_max_abs_diff(directory: Path, manifest: Mapping[str, Any], raw_inputs: np.ndarray,
                        native_outputs: np.ndarray) -> float:
    """Largest absolute difference between the ONNX export and the native model."""
    predictor = Predictor.load(verify(directory, manifest, ONNX_FILE))
    return float(np.max(np.abs(predictor.predict(raw_inputs) - native_outputs)))
