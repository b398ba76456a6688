"""`capas up` as a subprocess, then the whole flow over HTTP and through the CLI."""

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from capas import Client
from ml.datasets import load_builtin
from ml.spec import LAYER_TYPES
from tests.conftest import EXAMPLES, ROOT, every_layer_job
from tests.datafiles import iris_csv
from tests.e2e.conftest import CAPAS


def capas(service, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CAPAS, *args], cwd=ROOT, env=service["env"], capture_output=True,
                          text=True, timeout=300)


def test_the_four_steps(service, tmp_path):
    url, headers = service["url"], {"Authorization": f"Bearer {service['key']}"}
    # 1. First start printed the admin key once and saved it where the CLI finds it.
    assert service["key"] in service["log"].read_text()
    assert httpx.get(f"{url}/readyz").json()["status"] == "ready"

    # 2. Submit the example and watch it to the end; --framework overrides the file's.
    done = capas(service, "submit", str(EXAMPLES / "mlp-digits.json"), "--watch")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout and "digits-mlp version 1" in done.stdout
    job_id = done.stdout.split("job ", 1)[1].split()[0]
    done_tf = capas(service, "submit", str(EXAMPLES / "mlp-digits.json"), "--watch",
                    "--framework", "tensorflow")
    assert done_tf.returncode == 0, done_tf.stdout + done_tf.stderr
    assert "(tensorflow, model digits-mlp)" in done_tf.stdout

    # 3. The job, its metrics, the registry and predictions over HTTP.
    job = httpx.get(f"{url}/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "succeeded" and job["framework"] == "pytorch"
    assert [e["status"] for e in job["timeline"]] == ["queued", "running", "succeeded"]
    assert job["final_metrics"]["test_accuracy"] >= 0.9
    rows = httpx.get(f"{url}/jobs/{job_id}/metrics", headers=headers).json()
    assert [r["epoch"] for r in rows] == list(range(1, 21))
    model = httpx.get(f"{url}/models/digits-mlp", headers=headers).json()
    assert [(v["version"], v["framework"]) for v in model["versions"]] == [
        (1, "pytorch"), (2, "tensorflow")]

    digits = load_builtin("builtin:digits")
    instances = digits.x[:10].reshape(10, 64).tolist()  # raw pixel values, 0..16
    out = httpx.post(f"{url}/models/digits-mlp/predict", headers=headers,
                     json={"instances": instances}).json()
    assert out["version"] == 2 and out["classes"] == [str(d) for d in range(10)]
    correct = sum(p == str(t) for p, t in zip(out["predictions"], digits.y[:10], strict=True))
    assert correct >= 9
    same = httpx.post(f"{url}/predict", headers=headers,
                      json={"model": "digits-mlp", "version": 1, "instances": instances}).json()
    assert same["version"] == 1 and len(same["predictions"]) == 10

    # Every file the service writes lives in its data directory, none in the working folder.
    assert not (ROOT / "control").exists()

    listed = capas(service, "jobs")
    assert listed.returncode == 0 and job_id in listed.stdout

    # 4. The registry through the CLI: an alias steers predictions, artifacts download.
    moved = capas(service, "alias", "digits-mlp", "production", "1")
    assert moved.returncode == 0 and "digits-mlp@production → version 1" in moved.stdout
    request = tmp_path / "instances.json"
    request.write_text(json.dumps({"instances": instances[:2]}))
    predicted = capas(service, "predict", "digits-mlp", "--input", str(request))
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["version"] == 1
    predicted = capas(service, "predict", "digits-mlp", "--input", str(request),
                      "--version", "2")
    assert json.loads(predicted.stdout)["version"] == 2
    card = json.loads(capas(service, "card", "digits-mlp", "2").stdout)
    assert card["formats"] == ["onnx", "safetensors", "keras"]
    saved = capas(service, "download", "digits-mlp", "2", "--format", "keras",
                  "--output", str(tmp_path / "digits.keras"))
    assert saved.returncode == 0, saved.stderr
    assert hashlib.sha256((tmp_path / "digits.keras").read_bytes()).hexdigest() == \
        card["files"]["model.keras"]
    missing = capas(service, "download", "digits-mlp", "1", "--format", "keras")
    assert missing.returncode == 1 and "available: onnx, safetensors" in missing.stderr
    assert "production→1" in capas(service, "models").stdout
    shared = capas(service, "share", "digits-mlp")
    assert shared.returncode == 0 and "model digits-mlp is now public" in shared.stdout
    assert httpx.get(f"{url}/models/digits-mlp", headers=headers).json()["public"] is True
    unknown = capas(service, "share", "nope", "--private")
    assert unknown.returncode == 1 and "model 'nope' not found" in unknown.stderr
    removed = capas(service, "unalias", "digits-mlp", "production")
    assert removed.returncode == 0 and "digits-mlp@production removed" in removed.stdout
    assert "production→" not in capas(service, "models").stdout
    predicted = capas(service, "predict", "digits-mlp", "--input", "/dev/stdin")
    assert predicted.returncode != 0  # empty stdin is not JSON: a clean refusal, not a crash


def test_cli_validates_a_draft_and_shows_the_catalog(service, tmp_path):
    done = capas(service, "validate", str(EXAMPLES / "cnn-digits.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conv2d" in done.stdout and "8×8×16" in done.stdout
    assert "total parameters: 17,322; multiply-adds a sample: 34,324" in done.stdout
    body = json.loads((EXAMPLES / "cnn-digits.json").read_text())
    body["model"]["layers"][2]["pool_size"] = 16
    bad = tmp_path / "bad-pool.json"
    bad.write_text(json.dumps(body))
    refused = capas(service, "validate", str(bad))
    assert refused.returncode == 1
    assert "model.layers[2].pool_size: 16×16 is larger than the input (8×8)" in \
        " ".join(refused.stderr.split())
    listed = capas(service, "catalog", "activations")
    assert listed.returncode == 0 and "elliott" in listed.stdout and "(-1, 1)" in listed.stdout


def test_cli_reports_errors_with_field_and_value(service, tmp_path):
    body = json.loads((EXAMPLES / "mlp-digits.json").read_text())
    body["model"]["layers"][0]["units"] = -3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(body))
    done = capas(service, "submit", str(bad))
    assert done.returncode == 1
    assert "model.layers[0].units" in done.stderr and "received -3" in done.stderr


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_a_spec_with_every_layer_type_trains_and_serves(service, framework):
    url, headers = service["url"], {"Authorization": f"Bearer {service['key']}"}
    body = every_layer_job(framework, name=f"every-layer-{framework}")
    assert {layer["type"] for layer in body["model"]["layers"]} == set(LAYER_TYPES)
    response = httpx.post(f"{url}/jobs", headers=headers, json=body)
    assert response.status_code == 202, response.text
    with Client(url, service["key"]) as client:
        job = client.wait(response.json()["id"], timeout_s=300)
    assert job["status"] == "succeeded", job["failure_reason"]
    digits = load_builtin("builtin:digits")
    out = httpx.post(f"{url}/predict", headers=headers, json={
        "model": body["model"]["name"], "instances": digits.x[:3].tolist()}).json()
    assert len(out["predictions"]) == 3 and len(out["probabilities"][0]) == 10


def test_a_killed_worker_is_restarted_and_its_job_resumes(service):
    url, headers = service["url"], {"Authorization": f"Bearer {service['key']}"}
    body = json.loads((EXAMPLES / "cnn-digits.json").read_text())
    body.update(framework="pytorch")
    body["model"]["name"] = "survivor"
    body["training"]["epochs"] = 40
    job = httpx.post(f"{url}/jobs", headers=headers, json=body).json()
    with Client(url, service["key"]) as client:
        for _, kind, data in client.events(job["id"]):
            if kind == "epoch" and data["epoch"] >= 2:
                break
        worker = subprocess.run(["pgrep", "-P", str(service["process"].pid)],
                                capture_output=True, text=True).stdout.split()[0]
        pool = subprocess.run(["pgrep", "-P", worker], capture_output=True,
                              text=True).stdout.split()
        for pid in [*pool, worker]:
            os.kill(int(pid), signal.SIGKILL)
        done = client.wait(job["id"], timeout_s=300)
    assert done["status"] == "succeeded", done["failure_reason"]
    assert done["attempt"] == 2
    rows = httpx.get(f"{url}/jobs/{job['id']}/metrics", headers=headers).json()
    assert [row["epoch"] for row in rows] == list(range(1, 41))
    assert "restarting" in service["log"].read_text()


def test_cli_uploads_and_lists_datasets(service, tmp_path):
    iris = tmp_path / "iris.csv"
    iris.write_bytes(iris_csv())
    done = capas(service, "datasets", "upload", str(iris), "--target", "species")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "150 samples of 4, classification" in " ".join(done.stdout.split())
    dataset_id = done.stdout.split("dataset ", 1)[1].split()[0]
    listed = capas(service, "datasets", "list")
    assert listed.returncode == 0 and dataset_id in listed.stdout
    assert "builtin:spirals" in listed.stdout
    shared = capas(service, "datasets", "share", dataset_id)
    assert shared.returncode == 0 and f"dataset {dataset_id} is now public" in shared.stdout
    assert json.loads(capas(service, "datasets", "show", dataset_id).stdout)["public"] is True
    closed = capas(service, "datasets", "share", dataset_id, "--private")
    assert closed.returncode == 0 and "is now private" in closed.stdout
    assert json.loads(capas(service, "datasets", "show", dataset_id).stdout)["public"] is False
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b,label\n1,2,x\n3,nan,y\n")
    refused = capas(service, "datasets", "upload", str(bad), "--target", "label")
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())  # as rich wraps it
    assert "error 422" in message and "row 3, column 'b'" in message


def test_ctrl_c_stops_api_and_worker(service):
    process = service["process"]
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                              text=True).stdout.split()
    assert children, "capas up runs its worker as a child process"
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    deadline = time.monotonic() + 30  # only bounds the wait; a stopped child is gone at once
    while any(_running(pid) for pid in children):
        assert time.monotonic() < deadline, f"still running: {children}"
        time.sleep(0.1)


def _running(pid: str) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
