"""Migration 0002 on SQLite: a version published before it gets a complete model card."""

import json

from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from core.db import get_engine, session_scope
from core.migrate import upgrade
from core.services.auth import AuthService
from core.settings import Settings
from ml.spec import parse_job_spec
from tests.conftest import tiny_job

# What the publish step of revision 0001 stored: the manifest plus the export's difference.
CARD_0001 = {
    "format": "capas-model/1", "job_id": "job-1", "model_name": "old", "framework": "pytorch",
    "library_versions": {"python": "3.11.7"}, "input": {"shape": [4], "dtype": "float32"},
    "task": "classification", "class_names": ["setosa", "versicolor", "virginica"],
    "dataset": {"id": "builtin:iris", "sha256": "0" * 64, "seed": 3, "validation_split": 0.2},
    "params": 67, "device": "cpu", "metrics": {"final": {}, "best": {}, "test": {}},
    "preprocessing": {"method": "none", "shift": [0.0] * 4, "scale": [1.0] * 4},
    "files": {"spec.json": "0" * 64, "weights.safetensors": "1" * 64, "model.onnx": "2" * 64},
    "onnx_max_abs_diff": 3e-8,
}


def test_cards_from_before_the_registry_revision_are_completed(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", parity_tolerance=2e-4)
    settings.ensure_dirs()
    upgrade(settings, "0001")
    spec = parse_job_spec(tiny_job(name="old")).model_dump(mode="json")
    with get_engine(settings).begin() as connection:
        connection.execute(text(
            "INSERT INTO users (id, name, role, created_at) VALUES (1, 'admin', 'admin', "
            "CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO jobs (id, owner_id, status, model_name, framework, requested_device, "
            "queue, dataset, spec, attempt, max_attempts, max_runtime_s, epochs_done, "
            "model_version, created_at) VALUES ('job-1', 1, 'succeeded', 'old', 'pytorch', "
            "'auto', 'cpu', 'builtin:iris', :spec, 1, 3, 60, 3, 1, CURRENT_TIMESTAMP)"),
            {"spec": json.dumps(spec)})
        connection.execute(text(
            "INSERT INTO models (id, name, owner_id, created_at) VALUES "
            "(1, 'old', 1, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO model_versions (model_id, version, job_id, framework, artifact_dir, "
            "card, onnx_max_abs_diff, servable, created_at) VALUES (1, 1, 'job-1', 'pytorch', "
            "'jobs/job-1/model', :card, 3e-8, 1, CURRENT_TIMESTAMP)"),
            {"card": json.dumps(CARD_0001)})
    upgrade(settings)

    with session_scope(settings) as session:
        _, key = AuthService(session).create_user("reader", "admin")
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})
    card = client.get("/models/old/versions/1").json()
    assert card["spec"] == spec and card["output"] == {"shape": [3], "dtype": "float32"}
    assert card["export_parity"] == {"max_abs_diff": 3e-8, "tolerance": 2e-4}
    assert card["formats"] == ["onnx", "safetensors"]
    assert client.get("/v2/models/old").json()["outputs"][0]["shape"] == [-1, 3]
