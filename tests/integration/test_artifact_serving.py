"""A published model's files as the API serves them, from either artifact store: a file that is
missing from the store or whose sha256 does not match its card is never served (409)."""

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.artifacts import open_store
from core.settings import Settings
from tests.conftest import tiny_job
from tests.integration.conftest import wait_for_job

pytestmark = pytest.mark.integration


def another_api_host(settings: Settings, headers, tmp_path: Path) -> TestClient:
    """An API process that has loaded and cached nothing: with an object store, on a host of
    its own; with the local store, on the same shared directory."""
    if settings.artifact_url is not None:
        settings = settings.model_copy(update={"data_dir": tmp_path / uuid.uuid4().hex})
    return TestClient(create_app(settings), headers=headers)


def replace_in_store(settings: Settings, name: str, data: bytes | None) -> None:
    """Alter a stored file (None: remove it), as a fault or a hand would."""
    store = open_store(settings)
    if settings.artifact_url is None:
        path = store.root / name
        path.unlink() if data is None else path.write_bytes(data)
    elif data is None:
        store.client.delete_object(Bucket=store.bucket, Key=store.key(name))
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.key(name), Body=data)


def test_a_model_file_missing_or_altered_in_the_store_is_refused_naming_it(
        cluster_api, cluster_settings, worker, tmp_path):
    name = f"guarded-{uuid.uuid4().hex[:8]}"
    job = cluster_api.post("/jobs", json=tiny_job(epochs=2, name=name)).json()
    assert wait_for_job(cluster_api, job["id"])["status"] == "succeeded"
    served = another_api_host(cluster_settings, cluster_api.headers, tmp_path)
    predict = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    assert served.post(f"/models/{name}/predict", json=predict).status_code == 200
    assert served.get(f"/models/{name}/versions/1/artifacts/onnx").status_code == 200

    onnx = f"jobs/{job['id']}/model/model.onnx"
    for data, problem in ((b"not the trained model", "model.onnx does not match its sha256"),
                          (None, "model.onnx is missing from the artifact store")):
        replace_in_store(cluster_settings, onnx, data)
        host = another_api_host(cluster_settings, cluster_api.headers, tmp_path)
        for response in (host.get(f"/models/{name}/versions/1/artifacts/onnx"),
                         host.post(f"/models/{name}/predict", json=predict)):
            assert response.status_code == 409, response.text
            assert problem in response.json()["error"]["message"]
