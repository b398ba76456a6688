"""A real Celery worker consuming from Redis trains, records and publishes, in both frameworks."""

import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from core.db import session_scope
from core.models import JobMetric, ModelVersion
from ml.datasets import load_builtin
from tests.conftest import tiny_job
from tests.integration.conftest import start_worker, stop, wait_for_job


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_worker_trains_a_tiny_model_and_publishes_it(framework, cluster_api, cluster_settings,
                                                    worker):
    name = f"tiny-{framework}"
    response = cluster_api.post("/jobs", json=tiny_job(framework, epochs=4, name=name))
    assert response.status_code == 202, response.text
    job = wait_for_job(cluster_api, response.json()["id"])
    assert job["status"] == "succeeded", job["failure_reason"]
    assert [e["status"] for e in job["timeline"]] == ["queued", "running", "succeeded"]
    assert job["attempt"] == 1 and job["device"] == "cpu" and job["model_version"] == 1
    assert job["epochs_done"] == 4 and "test_accuracy" in job["final_metrics"]

    rows = cluster_api.get(f"/jobs/{job['id']}/metrics").json()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert all(r["loss"] is not None and r["val_accuracy"] is not None for r in rows)
    assert [r["epoch"] for r in
            cluster_api.get(f"/jobs/{job['id']}/metrics", params={"after_epoch": 2}).json()] \
        == [3, 4]
    with session_scope(cluster_settings) as session:
        assert session.scalar(select(func.count()).select_from(JobMetric)
                              .where(JobMetric.job_id == job["id"])) == 4
        version = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job["id"]))
        assert version.servable and version.onnx_max_abs_diff < 1e-4
        assert version.card["library_versions"]["python"]

    model = cluster_api.get(f"/models/{name}").json()
    assert model["latest_version"] == 1 and model["versions"][0]["framework"] == framework

    iris = load_builtin("builtin:iris")
    out = cluster_api.post(f"/models/{name}/predict",
                           json={"instances": iris.x[[0, 50, 100]].tolist()}).json()
    assert out["model"] == name and out["version"] == 1
    assert out["classes"] == ["setosa", "versicolor", "virginica"]
    assert out["predictions"][0] == "setosa"
    assert np.allclose(np.sum(out["probabilities"], axis=1), 1, atol=1e-5)
    same = cluster_api.post("/predict", json={"model": name, "instances": iris.x[[0]].tolist()})
    assert same.json()["probabilities"][0] == out["probabilities"][0]


def test_a_diverging_job_fails_with_the_epoch_and_value(cluster_api, worker):
    body = tiny_job(epochs=5, name="diverges")
    body["model"] = {"name": "diverges", "input": {"shape": [20, 1]}, "objective": "mse",
                     "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}
    body["dataset"] = "builtin:sine"
    body["training"]["optimizer"] = {"type": "sgd", "learning_rate": 1e12}
    job = wait_for_job(cluster_api, cluster_api.post("/jobs", json=body).json()["id"])
    assert job["status"] == "failed"
    assert job["failure_reason"].startswith("diverged at epoch 1 (loss=")
    assert job["attempt"] == 1


def test_bad_predict_instances_name_the_first_bad_one(cluster_api, worker):
    name = "tiny-predict-errors"
    job = wait_for_job(cluster_api, cluster_api.post(
        "/jobs", json=tiny_job(epochs=1, name=name)).json()["id"])
    assert job["status"] == "succeeded", job["failure_reason"]
    response = cluster_api.post(f"/models/{name}/predict",
                                json={"instances": [[1, 2, 3, 4], [1, 2, 3]]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith("instances[1]: expected 4 values in shape [4]")
    assert error["details"] == [{"field": "instances[1]", "value": [1, 2, 3]}]
    response = cluster_api.post(f"/models/{name}/predict", json={"instances": [["a"] * 4]})
    assert response.json()["error"]["details"][0]["field"] == "instances[0]"
    response = cluster_api.post(f"/models/{name}/predict",
                                json={"instances": [[1, 2, 3, 4]], "version": 7})
    assert response.status_code == 404


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_a_worker_keeps_its_framework_and_the_hosts_thread_count(framework, cluster_api,
                                                                 cluster_settings, worker):
    """Two jobs in a row run in the same worker process (the framework imported once, then
    kept) with the thread count chosen for the host, not the framework's default."""
    runtimes = []
    for run in range(2):
        name = f"kept-{framework}-{run}"
        job = wait_for_job(cluster_api, cluster_api.post(
            "/jobs", json=tiny_job(framework, epochs=1, name=name)).json()["id"])
        assert job["status"] == "succeeded", job["failure_reason"]
        with session_scope(cluster_settings) as session:
            runtimes.append(session.scalar(select(ModelVersion.card).where(
                ModelVersion.job_id == job["id"]))["runtime"])
    assert runtimes[0]["pid"] == runtimes[1]["pid"]
    assert runtimes[0]["threads"] == runtimes[1]["threads"] == cluster_settings.torch_threads


# A library each framework loads on import, as the process's memory map names it.
FRAMEWORK_LIBRARIES = {"pytorch": "libtorch_cpu.so", "tensorflow": "libtensorflow_framework.so"}


def test_a_worker_process_imports_its_frameworks_before_its_first_job(cluster_settings):
    # On a queue of its own: no job reaches it, so only the preload can load the libraries.
    process = start_worker(cluster_settings, "preload", queue="preload-check")
    try:
        deadline, loaded = time.monotonic() + 120, set()
        while loaded != set(FRAMEWORK_LIBRARIES) and time.monotonic() < deadline:
            time.sleep(0.5)
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
            maps = "".join(Path(f"/proc/{child}/maps").read_text()
                           for child in children.split())
            loaded = {name for name, library in FRAMEWORK_LIBRARIES.items() if library in maps}
        assert loaded == set(FRAMEWORK_LIBRARIES)
    finally:
        stop(process)
