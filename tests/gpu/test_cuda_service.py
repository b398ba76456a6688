"""`capas up` on a GPU host: one CUDA worker per GPU, jobs routed to it, served on the CPU."""

import re
import time

import httpx
import pytest

from ml.datasets import load_builtin
from tests.conftest import example
from tests.e2e.conftest import service  # noqa: F401  (the fixture: `capas up` in a fresh dir)
from tests.gpu.conftest import needs_cuda

pytestmark = needs_cuda


def _client(service) -> httpx.Client:  # noqa: F811
    return httpx.Client(base_url=service["url"], timeout=30,
                        headers={"Authorization": f"Bearer {service['key']}"})


def _cuda_workers(client: httpx.Client) -> int:
    found = re.search(r'^capas_workers\{queue="cuda"\} (\S+)$', client.get("/metrics").text,
                      re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def _finish(client: httpx.Client, body: dict) -> dict:
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    pytest.fail(f"job {job_id} did not end in 600 s")


def _digits_job(framework: str, device: str) -> dict:
    body = example("mlp-digits.json")
    body["framework"], body["device"] = framework, device
    body["training"]["epochs"] = 5
    return body


def test_up_starts_a_cuda_worker_and_routes_gpu_jobs_to_it(service):  # noqa: F811
    with _client(service) as client:
        deadline = time.monotonic() + 120
        while _cuda_workers(client) < 1:
            assert time.monotonic() < deadline, service["log"].read_text()
            time.sleep(1)

        on_gpu = _finish(client, _digits_job("pytorch", "cuda"))
        assert on_gpu["status"] == "succeeded", on_gpu["failure_reason"]
        assert (on_gpu["queue"], on_gpu["device"]) == ("cuda", "cuda")
        assert on_gpu["worker"].startswith("capas-cuda0@")
        assert on_gpu["final_metrics"]["test_accuracy"] >= 0.9

        auto = _finish(client, _digits_job("pytorch", "auto"))
        assert (auto["queue"], auto["device"]) == ("cuda", "cuda")
        on_cpu = _finish(client, _digits_job("pytorch", "cpu"))
        assert (on_cpu["queue"], on_cpu["device"]) == ("cpu", "cpu")

        # The GPU-trained version is served by ONNX Runtime in the API process, on the CPU.
        digits = load_builtin("builtin:digits")
        answer = client.post("/models/digits-mlp/predict", json={
            "version": on_gpu["model_version"],
            "instances": digits.x[:20].reshape(20, 64).tolist()}).json()
        correct = sum(p == str(t) for p, t in zip(answer["predictions"], digits.y[:20],
                                                   strict=True))
        assert answer["version"] == on_gpu["model_version"] and correct >= 18


def test_a_tensorflow_job_trains_on_the_gpu(service):  # noqa: F811
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed on this GPU host")
    with _client(service) as client:
        job = _finish(client, _digits_job("tensorflow", "cuda"))
        assert job["status"] == "succeeded", job["failure_reason"]
        assert (job["queue"], job["device"]) == ("cuda", "cuda")
