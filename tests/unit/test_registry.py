"""The registry and serving on the embedded stack: cards, aliases, downloads, predict, v2, batching.

Models are trained by the worker's own code (`TrainingService.run`) in this process.
"""

import asyncio
import hashlib
import json
import threading
import time
import zlib

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import session_scope
from core.migrate import upgrade
from core.models import Role
from core.services.auth import AuthService
from core.services.training import TrainingService
from core.settings import Settings
from ml.artifacts import ONNX_FILE
from ml.datasets import load_builtin
from tests.conftest import keras_file_outputs, native_outputs, tiny_job

IRIS = load_builtin("builtin:iris")
RAW = IRIS.x[::10]  # 15 raw instances across the three classes


def train_version(settings: Settings, client: TestClient, framework: str, name: str) -> dict:
    response = client.post("/jobs", json=tiny_job(framework, epochs=5, name=name))
    assert response.status_code == 202, response.text
    TrainingService(settings).run(response.json()["id"], "unit-worker")
    job = client.get(f"/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["failure_reason"]
    return job


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """`iris` v1 (pytorch) and v2 (tensorflow), and `drifted`, published over tolerance."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("registry") / "data")
    settings.ensure_dirs()
    upgrade(settings)
    with session_scope(settings) as session:
        key = AuthService(session).bootstrap_admin(settings)
    client = TestClient(create_app(settings))
    client.headers["Authorization"] = f"Bearer {key}"
    client.settings = settings
    train_version(settings, client, "pytorch", "iris")
    train_version(settings, client, "tensorflow", "iris")
    # A negative tolerance makes any export "too far": the refusal path, for real.
    train_version(settings.model_copy(update={"parity_tolerance": -1.0}), client, "pytorch",
                  "drifted")
    return client


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return error


def download(client: TestClient, name: str, version: int, fmt: str, path) -> dict:
    response = client.get(f"/models/{name}/versions/{version}/artifacts/{fmt}")
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    assert hashlib.sha256(response.content).hexdigest() == response.headers["X-Capas-Sha256"]
    return response.headers


def test_the_model_lists_versions_and_the_card_describes_one(registry):
    model = registry.get("/models/iris").json()
    assert [(v["version"], v["framework"], v["formats"]) for v in model["versions"]] == [
        (1, "pytorch", ["onnx", "safetensors"]),
        (2, "tensorflow", ["onnx", "safetensors", "keras"])]
    assert model["latest_version"] == 2 and model["aliases"] == {}
    assert model["batching"] == {"max_batch_size": 64, "max_delay_ms": 2.0}

    card = registry.get("/models/iris/versions/2").json()
    assert card["name"] == "iris" and card["version"] == 2 and card["framework"] == "tensorflow"
    assert card["spec"]["model"]["layers"][0] == {**tiny_job()["model"]["layers"][0],
                                                   **card["spec"]["model"]["layers"][0]}
    assert {"tensorflow", "keras", "numpy", "onnx", "python"} <= set(card["library_versions"])
    assert card["dataset"]["sha256"] == IRIS.schema["sha256"] and card["dataset"]["seed"] == 3
    split = card["dataset"]["split"]
    assert split["train"] + split["validation"] + split["test"] == len(IRIS.x)
    assert card["metrics"]["final"]["epoch"] == 5 and "val_loss" in card["metrics"]["best"]
    assert card["params"] == 4 * 8 + 8 + 8 * 3 + 3
    assert card["input"] == {"shape": [4], "dtype": "float32"}
    assert card["output"] == {"shape": [3], "dtype": "float32"}
    assert card["class_names"] == ["setosa", "versicolor", "virginica"]
    assert card["formats"] == ["onnx", "safetensors", "keras"] and card["servable"]
    assert 0 <= card["export_parity"]["max_abs_diff"] <= card["export_parity"]["tolerance"]
    directory = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model"
    for filename, digest in card["files"].items():
        assert hashlib.sha256((directory / filename).read_bytes()).hexdigest() == digest

    error = error_of(registry.get("/models/iris/versions/9"), 404, "not_found")
    assert error["details"] == [{"field": "version", "value": 9}]
    error = error_of(registry.get("/models/iris/versions/-3"), 422, "invalid")
    assert error["message"] == "invalid request: version: expected a positive integer, " \
                               "received '-3'"


@pytest.mark.parametrize("version", [1, 2])
def test_onnx_runtime_predictions_equal_the_native_frameworks(registry, version, tmp_path):
    card = registry.get(f"/models/iris/versions/{version}").json()
    download(registry, "iris", version, "safetensors", tmp_path / "weights.safetensors")
    native = native_outputs(card, tmp_path / "weights.safetensors", RAW)

    served = registry.post("/models/iris/predict",
                           json={"instances": RAW.tolist(), "version": version}).json()
    np.testing.assert_allclose(served["probabilities"], native, atol=1e-5)
    # Six places, as printed: not a float32's 17-digit double expansion.
    assert all(len(repr(p).partition(".")[2]) <= 6 for row in served["probabilities"]
               for p in row)
    assert served["predictions"] == [card["class_names"][i] for i in native.argmax(axis=1)]
    v2 = registry.post(f"/v2/models/iris/versions/{version}/infer", json={"inputs": [
        {"name": "input", "datatype": "FP32", "shape": list(RAW.shape),
         "data": RAW.ravel().tolist()}]}).json()
    np.testing.assert_allclose(np.reshape(v2["outputs"][0]["data"], native.shape), native,
                               atol=1e-5)
    if card["framework"] == "tensorflow":
        download(registry, "iris", version, "keras", tmp_path / "model.keras")
        np.testing.assert_allclose(keras_file_outputs(tmp_path / "model.keras", RAW),
                                   native, atol=1e-5)


def test_predict_picks_version_then_alias_then_production_then_latest(registry):
    def served_version(**body) -> int:
        response = registry.post("/models/iris/predict", json={"instances": [RAW[0].tolist()],
                                                               **body})
        assert response.status_code == 200, response.text
        return response.json()["version"]

    assert served_version() == 2
    moved = registry.put("/models/iris/aliases/staging", json={"version": 1}).json()
    assert moved["version"] == 1 and moved["history"][-1]["previous_version"] is None
    assert served_version(alias="staging") == 1
    assert served_version() == 2  # staging is not production
    registry.put("/models/iris/aliases/production", json={"version": 1})
    assert served_version() == 1
    assert served_version(version=2, alias="production") == 2
    moved = registry.put("/models/iris/aliases/production", json={"version": 2}).json()
    assert [(m["version"], m["previous_version"]) for m in moved["history"]][-2:] == [
        (1, None), (2, 1)]
    assert registry.get("/models/iris/aliases/production").json()["version"] == 2
    assert registry.get("/models/iris").json()["aliases"] == {"production": 2, "staging": 1}
    assert registry.get("/models/iris/versions/2").json()["aliases"] == ["production"]
    # The predict-by-body route resolves the same way.
    same = registry.post("/predict", json={"model": "iris", "alias": "staging",
                                           "instances": [RAW[0].tolist()]}).json()
    assert same["version"] == 1


def test_a_removed_alias_stops_resolving_and_keeps_its_history(api):
    for _ in range(2):
        train_version(api.settings, api, "pytorch", "iris-alias")

    def predict(**body):
        return api.post("/models/iris-alias/predict",
                        json={"instances": [RAW[0].tolist()], **body})

    api.put("/models/iris-alias/aliases/production", json={"version": 1})
    assert predict().json()["version"] == 1
    assert api.delete("/models/iris-alias/aliases/production").status_code == 204
    assert predict().json()["version"] == 2  # no production: the latest
    error = error_of(predict(alias="production"), 404, "not_found")
    assert error["details"] == [{"field": "alias", "value": "production"}]
    removed = api.get("/models/iris-alias/aliases/production").json()
    assert removed["version"] is None
    assert [(m["version"], m["previous_version"]) for m in removed["history"]] == [
        (1, None), (None, 1)]
    assert api.get("/models/iris-alias").json()["aliases"] == {}
    error = error_of(api.delete("/models/iris-alias/aliases/production"), 404, "not_found")
    assert error["details"] == [{"field": "alias", "value": "production"}]
    error_of(api.get("/models/iris-alias/aliases/never"), 404, "not_found")
    # Set again, it resolves again, and its history goes on.
    moved = api.put("/models/iris-alias/aliases/production", json={"version": 2}).json()
    assert [m["version"] for m in moved["history"]] == [1, None, 2]
    # Only the owner removes it, even from a public model.
    key = api.post("/users", json={"name": "reader", "role": "member"}).json()["api_key"]
    reader = TestClient(api.app, headers={"Authorization": f"Bearer {key}"})
    api.patch("/models/iris-alias", json={"public": True})
    error_of(reader.delete("/models/iris-alias/aliases/production"), 403, "forbidden")
    assert predict().json()["version"] == 2


def test_alias_and_version_errors_name_the_field_and_value(registry):
    error = error_of(registry.put("/models/iris/aliases/production", json={"version": -3}),
                     422, "invalid")
    assert error["message"] == "invalid request: version: expected a positive integer, " \
                               "received -3"
    assert error["details"][0]["field"] == "version" and error["details"][0]["value"] == -3
    error = error_of(registry.put("/models/iris/aliases/production", json={"version": 7}),
                     404, "not_found")
    assert error["details"] == [{"field": "version", "value": 7}]
    error = error_of(registry.put("/models/iris/aliases/9lives", json={"version": 1}),
                     422, "invalid")
    assert error["details"] == [{"field": "alias", "value": "9lives"}]
    error = error_of(registry.post("/models/iris/predict",
                                   json={"instances": [[1, 2, 3, 4]], "alias": "nope"}),
                     404, "not_found")
    assert error["details"] == [{"field": "alias", "value": "nope"}]
    error = error_of(registry.post("/models/iris/predict",
                                   json={"instances": [[1, 2, 3, 4]], "version": 0}),
                     422, "invalid")
    assert "version: expected a positive integer, received 0" in error["message"]


def test_members_cannot_move_or_read_another_users_model(registry):
    with session_scope(registry.settings) as session:
        _, key = AuthService(session).create_user("student-registry", Role.member)
    student = TestClient(registry.app, headers={"Authorization": f"Bearer {key}"})
    error_of(student.put("/models/iris/aliases/production", json={"version": 1}),
             403, "forbidden")
    error_of(student.get("/models/iris/versions/1/artifacts/onnx"), 403, "forbidden")
    response = student.get("/v2/models/iris")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert student.get("/models").json() == []


def test_downloads_come_only_from_intact_files_this_service_wrote(registry, tmp_path):
    card = registry.get("/models/iris/versions/1").json()
    headers = download(registry, "iris", 1, "onnx", tmp_path / "m.onnx")
    assert headers["X-Capas-Sha256"] == card["files"][ONNX_FILE]
    assert 'filename="iris-v1.onnx"' in headers["Content-Disposition"]
    error = error_of(registry.get("/models/iris/versions/1/artifacts/keras"), 404, "not_found")
    assert error["message"] == ("format: model 'iris' version 1 has no 'keras' artifact; "
                                "available: onnx, safetensors")
    assert error["details"] == [{"field": "format", "value": "keras",
                                 "available": ["onnx", "safetensors"]}]
    error = error_of(registry.get("/models/iris/versions/1/artifacts/pickle"), 404, "not_found")
    assert error["details"][0]["value"] == "pickle"


def test_a_tampered_export_is_neither_downloaded_nor_served(registry, tmp_path):
    job = train_version(registry.settings, registry, "pytorch", "tampered")
    onnx_file = registry.settings.artifacts_dir / "jobs" / job["id"] / "model" / ONNX_FILE
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    error = error_of(registry.get("/models/tampered/versions/1/artifacts/onnx"), 409, "conflict")
    assert "model.onnx does not match its sha256" in error["message"]
    error = error_of(registry.post("/models/tampered/predict", json={"instances": [[1] * 4]}),
                     409, "conflict")
    assert "model.onnx does not match its sha256" in error["message"]


def test_a_version_whose_export_does_not_match_is_refused_with_409(registry):
    version = registry.get("/models/drifted").json()["versions"][0]
    assert version["servable"] is False
    error = error_of(registry.post("/models/drifted/predict", json={"instances": [[1] * 4]}),
                     409, "conflict")
    assert "is not served: its ONNX export differs" in error["message"]
    response = registry.get("/v2/models/drifted/ready")
    assert response.status_code == 409 and "is not served" in response.json()["error"]


def test_predict_checks_instances_and_the_batch_limit(registry):
    error = error_of(registry.post("/models/iris/predict",
                                   content=b'{"instances": [[1, 2, 3, 4], [1, 2, NaN, 4]]}',
                                   headers={"Content-Type": "application/json"}),
                     422, "invalid")
    assert error["message"] == "instances[1]: contains NaN or infinite values"
    assert error["details"] == [{"field": "instances[1]", "value": [1, 2, "NaN", 4]}]
    error = error_of(registry.post("/models/iris/predict", json={"instances": [[1, 2, 3]]}),
                     422, "invalid")
    assert error["message"].startswith("instances[0]: expected 4 values in shape [4]")
    limit = registry.settings.max_predict_batch
    error = error_of(registry.post("/models/iris/predict",
                                   json={"instances": [[1, 2, 3, 4]] * (limit + 1)}),
                     422, "invalid")
    assert error["details"] == [{"field": "instances", "value": limit + 1}]


def v2_binary_request(instances: np.ndarray, binary_output: bool) -> tuple[bytes, dict]:
    raw = np.ascontiguousarray(instances, dtype="<f4").tobytes()
    header = json.dumps({
        "id": "req-1",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": list(instances.shape),
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "output", "parameters": {"binary_data": binary_output}}],
    }).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"}


def test_v2_metadata_readiness_and_binary_inference(registry):
    anonymous = TestClient(registry.app)
    assert anonymous.get("/v2/health/live").status_code == 200
    assert anonymous.get("/v2/health/ready").json() == {"ready": True}
    assert anonymous.get("/v2").status_code == 401
    assert "binary_tensor_data" in registry.get("/v2").json()["extensions"]
    meta = registry.get("/v2/models/iris").json()
    assert meta == {"name": "iris", "versions": ["1", "2"], "platform": "onnxruntime_onnx",
                    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
                    "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}]}
    assert registry.get("/v2/models/iris/versions/1").json()["versions"] == ["1"]
    assert registry.get("/v2/models/iris/versions/1/ready").json()["ready"] is True

    expected = registry.post("/models/iris/predict", json={"instances": RAW.tolist(),
                                                           "version": 1}).json()
    body, headers = v2_binary_request(RAW, binary_output=True)
    response = registry.post("/v2/models/iris/versions/1/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.content[:length])
    assert header["id"] == "req-1" and header["model_version"] == "1"
    output = header["outputs"][0]
    assert output["shape"] == [len(RAW), 3] and output["datatype"] == "FP32"
    values = np.frombuffer(response.content[length:], "<f4").reshape(output["shape"])
    assert output["parameters"]["binary_data_size"] == values.nbytes
    np.testing.assert_allclose(values, expected["probabilities"], atol=1e-5)

    body, headers = v2_binary_request(RAW, binary_output=False)
    answer = registry.post("/v2/models/iris/versions/1/infer", content=body,
                           headers=headers).json()
    np.testing.assert_allclose(np.reshape(answer["outputs"][0]["data"], (-1, 3)),
                               expected["probabilities"], atol=1e-5)


def test_v2_errors_name_the_field_in_the_protocols_error_shape(registry):
    def v2_error(body: dict, status: int = 422) -> dict:
        response = registry.post("/v2/models/iris/infer", json=body)
        assert response.status_code == status, response.text
        assert isinstance(response.json()["error"], str)
        return response.json()

    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}
    error = v2_error({"inputs": [tensor]})
    assert error["error"] == "inputs[0].shape: expected [-1, 4], received [1, 3]"
    error = v2_error({"inputs": [{**tensor, "shape": [1, 4]}]})
    assert error["details"] == [{"field": "inputs[0].data", "value": None}]
    error = v2_error({"inputs": [{**tensor, "name": "x"}]})
    assert error["error"] == "inputs: expected one tensor named 'input', received ['x']"
    error = v2_error({"inputs": [{**tensor, "datatype": "BYTES"}]})
    assert error["details"][0]["field"] == "inputs[0].datatype"
    body, headers = v2_binary_request(RAW, binary_output=True)
    response = registry.post("/v2/models/iris/infer", content=body[:-4], headers=headers)
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "inputs[0].parameters.binary_data_size"
    assert registry.post("/v2/models/nope/infer", json={"inputs": []}).status_code == 404
    response = registry.post("/v2/models/iris/infer", content=body,
                             headers={**headers, "Inference-Header-Content-Length": "ten"})
    assert response.status_code == 422 and response.json()["details"] == [
        {"field": "Inference-Header-Content-Length", "value": "ten"}]
    response = registry.post("/v2/models/iris/infer", content=b"{}",
                             headers={"Content-Encoding": "br"})
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"
    bomb = zlib.compress(b" " * (registry.settings.max_body_mb * 1024 * 1024 + 1))
    response = registry.post("/v2/models/iris/infer", content=bomb,
                             headers={"Content-Encoding": "deflate"})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


async def concurrent_predictions(app, count: int) -> list[httpx.Response]:
    key = app.state.test_key
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        return await asyncio.gather(*[
            client.post("/models/iris/predict",
                        json={"instances": [RAW[i % len(RAW)].tolist()], "version": 1})
            for i in range(count)])


def test_concurrent_requests_are_merged_and_each_gets_its_own_answer(registry):
    registry.app.state.test_key = registry.headers["Authorization"].split()[1]
    alone = registry.post("/models/iris/predict", json={"instances": [RAW[0].tolist()],
                                                        "version": 1})
    assert alone.headers["X-Capas-Batch-Size"] == "1"  # one waiting request runs at once

    expected = registry.post("/models/iris/predict", json={"instances": RAW.tolist(),
                                                           "version": 1}).json()
    # A generous delay lets the merge happen even on a loaded machine; it only bounds waits.
    registry.patch("/models/iris", json={"batching": {"max_batch_size": 8,
                                                      "max_delay_ms": 200}})
    try:
        responses = asyncio.run(concurrent_predictions(registry.app, 24))
    finally:
        restored = registry.patch("/models/iris", json={"batching": {
            "max_batch_size": None, "max_delay_ms": None}}).json()
    assert restored["batching"] == {"max_batch_size": 64, "max_delay_ms": 2.0}
    sizes = [int(r.headers["X-Capas-Batch-Size"]) for r in responses]
    assert max(sizes) > 1 and max(sizes) <= 8
    for i, response in enumerate(responses):
        assert response.json()["probabilities"][0] == pytest.approx(
            expected["probabilities"][i % len(RAW)], abs=1e-6)

    registry.patch("/models/iris", json={"batching": {"max_batch_size": 1}})
    try:
        responses = asyncio.run(concurrent_predictions(registry.app, 12))
    finally:
        registry.patch("/models/iris", json={"batching": {"max_batch_size": None}})
    assert {r.headers["X-Capas-Batch-Size"] for r in responses} == {"1"}


def test_the_batcher_merges_up_to_the_limit_and_fails_only_the_batch_that_failed(registry):
    from ml.serving import AdaptiveBatcher, BatchPolicy, Predictor

    card = registry.get("/models/iris/versions/1").json()
    onnx_file = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model" / ONNX_FILE
    predictor = Predictor.load(onnx_file)
    rows = RAW[:5].astype(np.float32)
    expected = predictor.predict(rows)
    policy = BatchPolicy(max_batch_size=4, max_delay_ms=50)

    async def submit(batches: list[np.ndarray]) -> list:
        batcher = AdaptiveBatcher()
        answers = await asyncio.gather(
            *[batcher.predict("v1", predictor, b, policy) for b in batches],
            return_exceptions=True)
        assert batcher.lanes == {}  # a drained lane is gone
        return answers

    # Nine wait together: the idle version splits them in two calls, each held to the limit
    # of four; the ninth runs when a call has ended.
    answers = asyncio.run(submit([rows[i % 5:i % 5 + 1] for i in range(9)]))
    assert [size for _, size in answers] == [4] * 8 + [1]
    np.testing.assert_allclose(np.concatenate([out for out, _ in answers]),
                               expected[[i % 5 for i in range(9)]], atol=1e-6)
    # A request larger than the limit is never split; it runs in a batch of its own.
    answers = asyncio.run(submit([rows, rows[:1]]))
    assert [size for _, size in answers] == [5, 1]
    # A malformed batch fails the batch it was merged into, and nothing else.
    answers = asyncio.run(submit([rows[:1], rows[:1, :3], rows[:1], rows[:1], rows[:1]]))
    assert all(isinstance(a, Exception) for a in answers[:3])
    assert [size for _, size in answers[3:]] == [2, 2]
    np.testing.assert_allclose(np.concatenate([out for out, _ in answers[3:]]),
                               expected[[0, 0]], atol=1e-6)


def test_an_idle_version_splits_what_waits_into_two_calls_in_flight_at_once(registry):
    from ml.serving import AdaptiveBatcher, BatchPolicy, Predictor

    class InFlight(Predictor):
        async def predict_async(self, batch: np.ndarray) -> np.ndarray:
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                return await super().predict_async(batch)
            finally:
                self.now -= 1

    card = registry.get("/models/iris/versions/1").json()
    onnx_file = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model" / ONNX_FILE

    def sizes_and_most_in_flight(count: int, policy: BatchPolicy) -> tuple[list[int], int]:
        predictor = InFlight(Predictor.load(onnx_file).session)
        predictor.now = predictor.most = 0

        async def together() -> list[int]:
            batcher = AdaptiveBatcher()
            answers = await asyncio.gather(*[
                batcher.predict("v1", predictor, RAW[i % len(RAW)][None].astype(np.float32),
                                policy) for i in range(count)])
            return [size for _, size in answers]

        return asyncio.run(together()), predictor.most

    # Twelve at once: two halves of six, both calls in flight together.
    assert sizes_and_most_in_flight(12, BatchPolicy(8, max_delay_ms=0)) == ([6] * 12, 2)
    # Held to four per call: a third call waits for one of the first two to end.
    sizes, most = sizes_and_most_in_flight(12, BatchPolicy(4, max_delay_ms=0))
    assert sizes[:8] == [4] * 8 and max(sizes[8:]) <= 4 and most == 2
    # Fewer than four are merged into one call.
    assert sizes_and_most_in_flight(3, BatchPolicy(8, max_delay_ms=0)) == ([3] * 3, 1)


class Ticking:
    """A clock that every look at moves on by `step` seconds, as on a loaded machine."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_batch_waits_to_fill_no_longer_than_its_call_is_expected_to_take(registry):
    from ml.serving import AdaptiveBatcher, BatchPolicy, Predictor

    card = registry.get("/models/iris/versions/1").json()
    onnx_file = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model" / ONNX_FILE
    rows = RAW[:1].astype(np.float32)
    policy = BatchPolicy(max_batch_size=3, max_delay_ms=1000)

    def batch_sizes(predictor: Predictor) -> list[int]:
        async def two_now_one_later() -> list[int]:
            # 10 ms pass at each look at the clock: far longer than a quick call, far shorter
            # than the delay.
            batcher = AdaptiveBatcher(clock=Ticking(0.01))
            now = [batcher.predict("v1", predictor, rows, policy) for _ in range(2)]

            async def later():
                await asyncio.sleep(0)  # once the first two are waiting for their batch
                return await batcher.predict("v1", predictor, rows, policy)

            answers = await asyncio.gather(*now, later())
            return [size for _, size in answers]

        return asyncio.run(two_now_one_later())

    # Untimed, a call may be slow: the two waiting requests hold the batch for the third.
    assert batch_sizes(Predictor.load(onnx_file)) == [3, 3, 3]
    # Shown to take microseconds, they run at once: waiting to merge would not pay.
    quick = Predictor.load(onnx_file)
    quick.seconds.update({1: 1e-5, 2: 2e-5})
    assert batch_sizes(quick) == [2, 2, 1]


def test_a_call_shown_to_be_quick_runs_on_the_event_loop_and_others_off_it(registry):
    from ml.serving import AdaptiveBatcher, BatchPolicy, Predictor

    class PlaceRecording(Predictor):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            self.places.append("loop" if threading.get_ident() == self.loop_thread
                               else "python thread")
            return super().predict(batch)

        async def predict_async(self, batch: np.ndarray) -> np.ndarray:
            self.places.append("onnx runtime thread")
            return await super().predict_async(batch)

    card = registry.get("/models/iris/versions/1").json()
    onnx_file = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model" / ONNX_FILE
    rows = RAW[:2].astype(np.float32)

    def places_of(batcher: AdaptiveBatcher, policy: BatchPolicy, together: bool) -> list[str]:
        predictor = PlaceRecording(Predictor.load(onnx_file).session)
        predictor.places, predictor.loop_thread = [], threading.get_ident()

        async def three_calls() -> None:
            calls = [batcher.predict("v1", predictor, rows, policy) for _ in range(3)]
            if together:
                await asyncio.gather(*calls)
            else:
                for call in calls:
                    await call

        asyncio.run(three_calls())
        return predictor.places

    off, on = BatchPolicy(max_batch_size=1, max_delay_ms=0), BatchPolicy(8, max_delay_ms=2)
    for policy in (off, on):
        # A call of a size not yet timed goes to a Python thread; once timed under the limit,
        # it runs inline.
        quick = AdaptiveBatcher(inline_max_s=1.0)
        assert places_of(quick, policy, False) == ["python thread", "loop", "loop"]
        assert places_of(AdaptiveBatcher(inline_max_s=0.0), policy, False) == \
            ["python thread"] * 3
    # Three requests at once are one merged call, on the session's ONNX Runtime thread.
    assert places_of(AdaptiveBatcher(inline_max_s=0.0), on, True) == ["onnx runtime thread"]
    assert places_of(AdaptiveBatcher(inline_max_s=0.0), off, True) == ["python thread"] * 3


def test_a_size_not_yet_timed_is_estimated_from_the_largest_smaller_one_timed(registry):
    from ml.serving import Predictor

    card = registry.get("/models/iris/versions/1").json()
    onnx_file = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model" / ONNX_FILE
    predictor = Predictor.load(onnx_file)
    assert predictor.expected_seconds(3) == float("inf")  # nothing timed yet
    predictor.seconds.update({2: 0.001, 4: 0.003})  # by size rounded up to a power of two
    assert predictor.expected_seconds(2) == 0.001 and predictor.expected_seconds(3) == 0.003
    assert predictor.expected_seconds(1) == float("inf")  # no smaller size was timed
    assert predictor.expected_seconds(7) == pytest.approx(0.006)  # 4's, for twice the rows
    assert predictor.expected_seconds(20) == pytest.approx(0.024)


def test_a_call_on_onnx_runtimes_thread_answers_like_a_direct_one_and_is_timed(registry):
    from ml.serving import Predictor

    card = registry.get("/models/iris/versions/1").json()
    onnx_file = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model" / ONNX_FILE
    predictor = Predictor.load(onnx_file)
    rows = RAW[:5].astype(np.float32)

    async def calls() -> list[np.ndarray]:
        return [await predictor.predict_async(rows) for _ in range(2)]

    first, second = asyncio.run(calls())
    direct = Predictor.load(onnx_file).predict(rows)
    np.testing.assert_array_equal(first, direct)
    np.testing.assert_array_equal(second, direct)
    assert 0 < predictor.expected_seconds(5) < 1
    with pytest.raises(Exception, match="input"):  # ONNX Runtime's refusal reaches the caller
        asyncio.run(predictor.predict_async(np.zeros((1, 7), np.float32)))


def test_a_call_is_timed_by_its_work_not_by_its_wait_for_the_lock(registry):
    from ml.serving import Predictor

    class Waiting:
        """A session whose calls then wait without working, as a thread that waits for the
        interpreter lock after ONNX Runtime returns."""

        def __init__(self, session) -> None:
            self.session = session

        def run(self, *args):
            outputs = self.session.run(*args)
            time.sleep(0.05)  # how long only decides how plainly a clock would be caught
            return outputs

    card = registry.get("/models/iris/versions/1").json()
    onnx_file = registry.settings.artifacts_dir / "jobs" / card["job_id"] / "model" / ONNX_FILE
    predictor = Predictor(Waiting(Predictor.load(onnx_file).session))
    rows = RAW[:5].astype(np.float32)
    cpu = time.thread_time()
    predictor.predict(rows)
    # The call's own CPU time at most, whatever the wait: a clock would have counted it.
    assert predictor.expected_seconds(len(rows)) <= time.thread_time() - cpu


def test_prediction_routes_are_documented_and_answer_other_methods_with_405(registry):
    operations = registry.get("/openapi.json").json()["paths"]
    for path in ("/predict", "/models/{name}/predict", "/v2/models/{name}/infer",
                 "/v2/models/{name}/versions/{version}/infer"):
        operation = operations[path]["post"]
        assert operation["security"] == [{"HTTPBearer": []}]
        assert "application/json" in operation["requestBody"]["content"]
    predict_body = operations["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert set(predict_body["schema"]["required"]) == {"instances", "model"}
    response = registry.get("/models/iris/predict")
    assert response.status_code == 405 and response.json()["error"]["code"] == \
        "method_not_allowed"
    registry.post("/models/iris/predict", json={"instances": [RAW[0].tolist()]})
    metrics = registry.get("/metrics").text
    assert 'capas_http_requests_total{method="POST",route="/models/{name}/predict",' \
           'status="200"}' in metrics


def test_a_fault_of_ours_is_a_500_in_the_error_shape_on_every_route(registry, monkeypatch):
    from core.services.inference import InferenceService
    from core.services.registry import RegistryService

    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    def broken_listing(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(InferenceService, "run", broken)
    monkeypatch.setattr(RegistryService, "visible", broken_listing)
    client = TestClient(registry.app, raise_server_exceptions=False,
                        headers=dict(registry.headers))
    response = client.post("/models/iris/predict", json={"instances": [RAW[0].tolist()]})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal server error",
                                         "details": []}}
    infer = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                         "data": RAW[0].tolist()}]}
    response = client.post("/v2/models/iris/infer", json=infer)
    assert response.status_code == 500 and response.json()["error"] == "internal server error"
    assert 'route="/v2/models/{name}/infer",status="500"' in client.get("/metrics").text
    response = client.get("/models")  # a route FastAPI serves: its error layer answers alike
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal"


def test_a_prediction_body_over_the_cap_is_refused_as_it_arrives(registry):
    cap = registry.settings.max_body_mb * 1024 * 1024
    for path in ("/models/iris/predict", "/v2/models/iris/infer"):
        chunks = (b" " * 65536 for _ in range(cap // 65536 + 1))  # no length declared
        response = registry.post(path, content=chunks, headers={"Content-Type": "application/json"})
        assert response.status_code == 413, response.text
        assert f"request body exceeds {cap} bytes" in response.text


def test_an_alias_moved_by_another_api_process_is_seen_after_the_lookup_cache(registry):
    other_settings = registry.settings.model_copy(update={"lookup_cache_s": 0.0})
    other = TestClient(create_app(other_settings), headers=dict(registry.headers))
    registry.put("/models/iris/aliases/shadow", json={"version": 1})
    body = {"instances": [RAW[0].tolist()], "alias": "shadow"}
    assert other.post("/models/iris/predict", json=body).json()["version"] == 1
    registry.put("/models/iris/aliases/shadow", json={"version": 2})
    # Without a lookup cache, the other process asks SQL on every request.
    assert other.post("/models/iris/predict", json=body).json()["version"] == 2
