"""The API on the embedded stack (SQLite, filesystem broker): auth, errors, validation, limits."""

import gc
import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import session_scope
from core.models import Job
from core.services.auth import AuthService
from ml.datasets import BUILTINS
from tests.conftest import example, tiny_job


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_the_api_process_imports_no_framework():
    code = ("import sys; from api.app import create_app; from core.settings import Settings; "
            "create_app(Settings(data_dir='/tmp/capas-import-check')); "
            "print([m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_worker_process_preloads_the_frameworks_it_is_told(tmp_path):
    code = ("import sys; from core.settings import Settings; "
            "from workers.celery_app import preload_frameworks; "
            f"preload_frameworks(Settings(data_dir='{tmp_path}', worker_preload=['pytorch'])); "
            "print([m for m in ('torch', 'tensorflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "CAPAS_DATA_DIR": str(tmp_path)})
    assert out.stdout.strip() == "['torch']"


def test_first_start_creates_one_admin_and_saves_its_key(embedded_settings):
    with session_scope(embedded_settings) as session:
        key = AuthService(session).bootstrap_admin(embedded_settings)
        assert AuthService(session).bootstrap_admin(embedded_settings) is None
    saved = json.loads(embedded_settings.credentials_file.read_text())
    assert saved["api_key"] == key and key.startswith("capas_")
    assert oct(embedded_settings.credentials_file.stat().st_mode)[-3:] == "600"


def test_health_needs_no_key_and_readiness_checks_sql_and_broker(api):
    anonymous = TestClient(api.app)
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert anonymous.get("/readyz").json() == {"status": "ready", "database": True,
                                               "broker": True,
                                               "artifacts": True}


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"])
def test_missing_or_wrong_key_is_401(api, header):
    client = TestClient(api.app)
    headers = {"Authorization": header} if header else {}
    assert_error(client.get("/me", headers=headers), 401, "unauthorized")


def test_me(api):
    assert api.get("/me").json() == {"id": 1, "name": "admin", "role": "admin", "models": None}


def test_unknown_job_and_model_are_404(api):
    error = assert_error(api.get("/jobs/nope"), 404, "not_found")
    assert error["details"] == [{"field": "job_id", "value": "nope"}]
    assert_error(api.get("/models/nope"), 404, "not_found")
    assert_error(api.post("/models/nope/predict", json={"instances": [[1]]}), 404, "not_found")
    assert_error(api.get("/no/such/route"), 404, "not_found")


def test_malformed_bodies_are_422_in_the_error_shape(api):
    error = assert_error(api.post("/jobs", content=b"{not json",
                                  headers={"Content-Type": "application/json"}), 422, "invalid")
    assert error["details"][0]["field"] == "body"
    error = assert_error(api.post("/models/x/predict", json={"instances": []}), 422, "invalid")
    assert error["details"][0]["field"] == "instances"
    assert_error(api.get("/jobs", params={"limit": 0}), 422, "invalid")


def test_an_invalid_spec_is_refused_before_anything_is_stored(api):
    body = example("mlp-digits.json")
    body["model"]["layers"][0]["units"] = -3
    body["model"]["layers"][3]["activation"] = "sofmax"
    error = assert_error(api.post("/jobs", json=body), 422, "invalid")
    fields = {d["field"]: d for d in error["details"]}
    assert fields["model.layers[0].units"]["value"] == -3
    assert "did you mean 'softmax'" in fields["model.layers[3].activation"]["message"]
    with session_scope(api.settings) as session:
        assert session.query(Job).count() == 0


def test_a_model_that_does_not_fit_the_dataset_is_refused(api):
    body = tiny_job()
    body["dataset"] = "builtin:digits"
    error = assert_error(api.post("/jobs", json=body), 422, "invalid")
    assert error["details"][0]["field"] == "model.input.shape"
    body["dataset"] = "builtin:nothing"
    error = assert_error(api.post("/jobs", json=body), 422, "invalid")
    assert [(d["field"], d["value"]) for d in error["details"]] == [("dataset",
                                                                     "builtin:nothing")]


def test_submit_queues_a_job_and_lists_it(api):
    response = api.post("/jobs", json=tiny_job())
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["epochs"] == 3 and job["queue"] == "cpu"
    assert [event["status"] for event in job["timeline"]] == ["queued"]
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    # The message is in the filesystem broker's queue folder, waiting for a worker.
    assert any((api.settings.broker_dir / "queue").iterdir())
    listed = api.get("/jobs", params={"status": "queued"}).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert api.get("/jobs", params={"status": "running"}).json()["items"] == []
    assert api.get(f"/jobs/{job['id']}/metrics").json() == []


def test_a_repeated_submission_id_returns_the_same_job(api):
    first = api.post("/jobs", json={**tiny_job(), "submission_id": "abc"})
    second = api.post("/jobs", json={**tiny_job(), "submission_id": "abc"})
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    error = assert_error(api.post("/jobs", json={**tiny_job(), "max_runtime_s": -1}),
                         422, "invalid")
    assert error["details"] == [{"field": "max_runtime_s", "value": -1,
                                 "message": "input should be greater than 0"}]
    assert error["message"] == "max_runtime_s: input should be greater than 0, received -1"


def test_the_running_app_freezes_its_startup_heap_and_collects_young_garbage_less_often(
        embedded_settings):
    # Full collections over the startup heap, and request objects promoted while they waited
    # for their batch, once set the p99 of /predict under load.
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        with TestClient(create_app(embedded_settings)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 100_000
            assert gc.get_threshold()[0] == 10_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_members_cannot_read_each_others_jobs(api):
    from core.models import Role

    job = api.post("/jobs", json=tiny_job()).json()
    with session_scope(api.settings) as session:
        _, key = AuthService(session).create_user("student", Role.member)
    student = TestClient(api.app, headers={"Authorization": f"Bearer {key}"})
    assert_error(student.get(f"/jobs/{job['id']}"), 403, "forbidden")
    assert student.get("/jobs").json()["items"] == []


def test_body_size_is_capped_before_spooling(api):
    big = b"x" * (api.settings.max_body_mb * 1024 * 1024 + 1)
    assert_error(api.post("/jobs", content=big, headers={"Content-Type": "application/json"}),
                 413, "payload_too_large")


def test_datasets_lists_the_builtins(api):
    ids = [d["id"] for d in api.get("/datasets").json()]
    assert ids == list(BUILTINS)
    assert api.get("/datasets/builtin:digits").json()["feature_shape"] == [8, 8, 1]


def test_builtins_are_described_with_a_preview(api):
    listed = api.get("/datasets").json()
    assert all(d["source"] == "builtin" and d["preview"] is None for d in listed)
    digits = api.get("/datasets/builtin:digits").json()
    assert digits["kind"] == "image"
    assert digits["num_classes"] == 10 and sum(digits["class_counts"]) == 1797
    assert len(digits["preview"]) == 5 and digits["preview"][0]["target"] == "0"
    iris = api.get("/datasets/builtin:iris").json()
    assert iris["preview"][0] == {"features": [5.1, 3.5, 1.4, 0.2], "target": "setosa"}
    assert_error(api.delete("/datasets/builtin:iris"), 403, "forbidden")


def test_a_job_records_the_dataset_hash_and_split(api):
    job = api.post("/jobs", json=tiny_job()).json()
    assert job["dataset_sha256"] == api.get("/datasets/builtin:iris").json()["sha256"]
    assert job["split"] == {"seed": 3, "test_fraction": 0.2, "validation_split": 0.2,
                            "stratified": True, "train": 96, "validation": 24, "test": 30}


def test_an_upload_has_its_own_larger_body_cap(api):
    api.settings.max_upload_mb = 1
    client = TestClient(create_app(api.settings), headers=dict(api.headers))
    csv = b"a,b,label\n" + b"1.5,2.5,x\n3.5,4.5,y\n" * 40_000  # 0.8 MB
    response = client.post("/datasets", files={"file": ("big.csv", csv)},
                           data={"target": "label"})
    assert response.status_code == 201, response.text
    error = assert_error(client.post("/datasets", files={"file": ("big.csv", csv * 2)},
                                     data={"target": "label"}), 413, "payload_too_large")
    assert error["message"].startswith("request body exceeds")
    assert list(api.settings.upload_temp_dir.iterdir()) == []
