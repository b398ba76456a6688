"""Saved models: weights round-trip, files are hash-checked, the export matches the native model."""

import numpy as np
import pytest

from ml.artifacts import (
    ONNX_FILE,
    WEIGHTS_FILE,
    ArtifactIntegrityError,
    export_max_abs_diff,
    read_manifest,
    read_weights,
    verify,
    write_model,
)
from ml.backends import get_backend
from ml.datasets import load_builtin
from ml.spec import parse_job_spec
from ml.training import prepare, train
from tests.conftest import tiny_job
from tests.unit.test_training import Recorder


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_save_load_round_trip_and_export_parity(framework, tmp_path):
    spec = parse_job_spec(tiny_job(framework))
    data = prepare(spec, load_builtin(spec.dataset))
    result = train(spec, data, Recorder())
    backend = get_backend(framework)
    weights = backend.get_weights(result.native)
    manifest = write_model(tmp_path, spec, weights, data.preprocessing, {"framework": framework})
    assert read_manifest(tmp_path) == manifest
    loaded = read_weights(tmp_path, manifest)
    rebuilt = backend.build(spec.model)
    backend.set_weights(rebuilt, loaded)
    np.testing.assert_allclose(backend.predict(rebuilt, data.x_val),
                               backend.predict(result.native, data.x_val), atol=1e-6)
    raw = data.x_val * data.preprocessing.scale + data.preprocessing.shift
    diff = export_max_abs_diff(tmp_path, manifest, raw, backend.predict(result.native, data.x_val))
    assert diff < 1e-4


def test_a_tampered_file_is_refused(tmp_path):
    spec = parse_job_spec(tiny_job())
    data = prepare(spec, load_builtin(spec.dataset))
    backend = get_backend("pytorch")
    weights = backend.get_weights(backend.build(spec.model))
    manifest = write_model(tmp_path, spec, weights, data.preprocessing, {})
    verify(tmp_path, manifest, ONNX_FILE)
    with (tmp_path / WEIGHTS_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match="weights.safetensors does not match"):
        read_weights(tmp_path, manifest)
