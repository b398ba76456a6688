"""Serving on the cluster stack: models a real worker trained, served by `capas api` to the
official Triton HTTP client, aliases on PostgreSQL, concurrent predictions."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from ml.datasets import load_builtin
from tests.conftest import keras_file_outputs, native_outputs, tiny_job
from tests.integration.conftest import start_api, stop, wait_for_job

IRIS = load_builtin("builtin:iris")
RAW = IRIS.x[::7].astype(np.float32)


def publish(cluster_api, framework: str, name: str) -> dict:
    response = cluster_api.post("/jobs", json=tiny_job(framework, epochs=4, name=name))
    assert response.status_code == 202, response.text
    job = wait_for_job(cluster_api, response.json()["id"])
    assert job["status"] == "succeeded", job["failure_reason"]
    return job


def save(cluster_api, name: str, version: int, fmt: str, path) -> None:
    response = cluster_api.get(f"/models/{name}/versions/{version}/artifacts/{fmt}")
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_the_triton_client_works_unchanged_and_matches_the_native_framework(
        framework, cluster_api, cluster_server, worker, tmp_path):
    name = f"served-{framework}"
    job = publish(cluster_api, framework, name)
    key = cluster_api.headers["Authorization"]

    def auth() -> dict[str, str]:
        # A fresh dict per call: the client writes its own headers into the one it is given.
        return {"Authorization": key}

    client = triton.InferenceServerClient(url=cluster_server)
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata(headers=auth())["extensions"]
    metadata = client.get_model_metadata(name, headers=auth())
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}]
    assert client.is_model_ready(name, model_version="1", headers=auth())

    card = cluster_api.get(f"/models/{name}/versions/1").json()
    assert card["job_id"] == job["id"] and card["framework"] == framework
    save(cluster_api, name, 1, "safetensors", tmp_path / "weights.safetensors")
    native = native_outputs(card, tmp_path / "weights.safetensors", RAW)

    for binary in (True, False):
        tensor = triton.InferInput("input", list(RAW.shape), "FP32")
        tensor.set_data_from_numpy(RAW, binary_data=binary)
        result = client.infer(name, [tensor], model_version="1", headers=auth(),
                              outputs=[triton.InferRequestedOutput("output", binary_data=binary)])
        np.testing.assert_allclose(result.as_numpy("output"), native, atol=1e-5)
        assert result.get_response()["model_version"] == "1"
    # No outputs named: the client asks for every output in binary.
    result = client.infer(name, [tensor], headers=auth())
    np.testing.assert_allclose(result.as_numpy("output"), native, atol=1e-5)
    for encoding in ("gzip", "deflate"):
        result = client.infer(name, [tensor], headers=auth(),
                              request_compression_algorithm=encoding)
        np.testing.assert_allclose(result.as_numpy("output"), native, atol=1e-5)

    served = cluster_api.post(f"/models/{name}/predict", json={"instances": RAW.tolist()}).json()
    np.testing.assert_allclose(served["probabilities"], native, atol=1e-5)
    if framework == "tensorflow":
        save(cluster_api, name, 1, "keras", tmp_path / "model.keras")
        np.testing.assert_allclose(keras_file_outputs(tmp_path / "model.keras", RAW),
                                   native, atol=1e-5)
    else:
        assert cluster_api.get(f"/models/{name}/versions/1/artifacts/keras").status_code == 404

    bad = triton.InferInput("input", [1, 3], "FP32")
    bad.set_data_from_numpy(RAW[:1, :3], binary_data=True)
    with pytest.raises(InferenceServerException) as refused:
        client.infer(name, [bad], headers=auth())
    assert "inputs[0].shape: expected [-1, 4], received [1, 3]" in str(refused.value)
    assert refused.value.status() == "422"
    client.close()


def test_aliases_move_with_history_and_steer_predictions(cluster_api, worker):
    name = "aliased"
    publish(cluster_api, "pytorch", name)
    publish(cluster_api, "pytorch", name)

    def served_version(**body) -> int:
        response = cluster_api.post(f"/models/{name}/predict",
                                    json={"instances": RAW[:2].tolist(), **body})
        assert response.status_code == 200, response.text
        return response.json()["version"]

    assert served_version() == 2
    assert cluster_api.put(f"/models/{name}/aliases/production",
                           json={"version": 1}).status_code == 200
    assert served_version() == 1
    cluster_api.put(f"/models/{name}/aliases/canary", json={"version": 2})
    assert served_version(alias="canary") == 2
    moved = cluster_api.put(f"/models/{name}/aliases/production", json={"version": 2}).json()
    assert [(m["version"], m["previous_version"]) for m in moved["history"]] == [(1, None),
                                                                                 (2, 1)]
    assert served_version() == 2 and served_version(version=1) == 1
    assert cluster_api.get(f"/models/{name}").json()["aliases"] == {"canary": 2,
                                                                   "production": 2}


def test_concurrent_requests_to_the_api_process_each_get_their_own_answer(
        cluster_api, cluster_server, worker):
    name = "concurrent"
    publish(cluster_api, "pytorch", name)
    expected = cluster_api.post(f"/models/{name}/predict",
                                json={"instances": RAW.tolist()}).json()["probabilities"]
    headers = {"Authorization": cluster_api.headers["Authorization"]}

    with httpx.Client(base_url=f"http://{cluster_server}", headers=headers) as http:
        def one(index: int) -> tuple[int, list[float]]:
            response = http.post(f"/models/{name}/predict",
                                 json={"instances": [RAW[index % len(RAW)].tolist()]})
            assert response.status_code == 200, response.text
            return int(response.headers["X-Capas-Batch-Size"]), \
                response.json()["probabilities"][0]

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(96)))
    for index, (batch_size, probabilities) in enumerate(answers):
        assert 1 <= batch_size <= 64
        np.testing.assert_allclose(probabilities, expected[index % len(RAW)], atol=1e-6)


def test_the_api_server_logs_each_request_unless_told_not_to(cluster_settings):
    for options, logged in (((), True), (("--no-access-log",), False)):
        process, address = start_api(cluster_settings, *options, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        assert httpx.get(f"http://{address}/healthz").status_code == 200
        stop(process)
        assert ('"GET /healthz HTTP/1.1" 200' in process.stdout.read()) == logged
