"""What must never be lost (DESIGN §6), against the real PostgreSQL, Redis and Celery workers."""

import os
import signal
import subprocess
import sys
import time

import httpx
import redis
from sqlalchemy import func, select

from capas import Client
from core.broker import TRAIN_TASK, celery_for
from core.db import session_scope
from core.models import JobMetric, ModelVersion
from tests.conftest import ROOT, example, free_port, tiny_job
from tests.integration.conftest import cluster_env, wait_for, wait_for_job


def long_job(name: str, epochs: int = 30) -> dict:
    """The CNN example on PyTorch: a few hundredths of a second per epoch."""
    body = example("cnn-digits.json")
    body["model"]["name"] = name
    body["framework"] = "pytorch"
    body["training"]["epochs"] = epochs
    return body


def exactly_once(settings, job: dict) -> None:
    """Epochs 1..N each recorded once, and one model version registered for the job."""
    with session_scope(settings) as session:
        epochs = list(session.scalars(select(JobMetric.epoch)
                                      .where(JobMetric.job_id == job["id"])
                                      .order_by(JobMetric.epoch)))
        versions = session.scalar(select(func.count()).select_from(ModelVersion)
                                  .where(ModelVersion.job_id == job["id"]))
    assert epochs == list(range(1, job["epochs"] + 1))
    assert versions == 1


def held_by_a_worker(settings, job_id: str) -> bool:
    """Whether a worker is running or holds a task for the job (asked over the broker)."""
    inspect = celery_for(settings).control.inspect(timeout=1)
    tasks = [*(inspect.active() or {}).values(), *(inspect.reserved() or {}).values()]
    return any(job_id in task["args"] for held in tasks for task in held)


def test_sigkill_mid_epoch_then_a_new_worker_resumes_the_job(cluster_api, cluster_settings,
                                                            workers):
    first = workers("doomed")
    job = cluster_api.post("/jobs", json=long_job("resumed")).json()
    wait_for(cluster_api, job["id"], lambda j: j["epochs_done"] >= 3, timeout_s=120)
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool child, mid-epoch
    first.wait()
    workers("rescuer")
    done = wait_for_job(cluster_api, job["id"], timeout_s=180)
    assert done["status"] == "succeeded", done["failure_reason"]
    assert done["attempt"] == 2 and done["worker"].startswith("rescuer@")
    statuses = [(e["status"], e["detail"] or "") for e in done["timeline"]]
    assert any(s == "queued" and "worker lost" in d for s, d in statuses)
    exactly_once(cluster_settings, done)
    assert cluster_api.get("/models/resumed").json()["latest_version"] == 1


def test_jobs_queued_when_the_broker_loses_everything_still_run(cluster_api, cluster_settings,
                                                               workers):
    jobs = [cluster_api.post("/jobs", json=tiny_job(epochs=2, name=f"flushed-{i}")).json()
            for i in range(3)]
    # Only this test session's database: the same loss as FLUSHALL for this service.
    redis.Redis.from_url(cluster_settings.broker_url).flushdb()
    workers("after-flush")
    for job in jobs:
        done = wait_for_job(cluster_api, job["id"], timeout_s=120)
        assert done["status"] == "succeeded", done["failure_reason"]
        exactly_once(cluster_settings, done)


def test_one_job_delivered_twice_to_two_workers_trains_once(cluster_api, cluster_settings,
                                                           workers):
    workers("twin-a")
    workers("twin-b")
    job = cluster_api.post("/jobs", json=tiny_job(epochs=3, name="twice")).json()
    celery_for(cluster_settings).send_task(TRAIN_TASK, args=[job["id"]], queue="cpu")
    done = wait_for_job(cluster_api, job["id"], timeout_s=120)
    assert done["status"] == "succeeded" and done["attempt"] == 1
    # The second delivery has been dropped once the queue is empty and no worker holds it.
    broker, deadline = redis.Redis.from_url(cluster_settings.broker_url), time.monotonic() + 60
    while broker.llen("cpu") or held_by_a_worker(cluster_settings, job["id"]):
        assert time.monotonic() < deadline, "the second delivery is still queued or running"
    again = cluster_api.get(f"/jobs/{job['id']}").json()
    assert again["attempt"] == 1 and [e["status"] for e in again["timeline"]] == [
        "queued", "running", "succeeded"]
    exactly_once(cluster_settings, again)


def test_cancel_stops_a_running_job_within_a_batch(cluster_api, workers):
    workers("cancelling")
    job = cluster_api.post("/jobs", json=long_job("cancelled", epochs=500)).json()
    wait_for(cluster_api, job["id"], lambda j: j["epochs_done"] >= 1, timeout_s=120)
    response = cluster_api.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    done = wait_for_job(cluster_api, job["id"], timeout_s=10)
    assert done["status"] == "cancelled" and done["failure_reason"] == "cancelled by user"
    assert done["epochs_done"] < 500
    again = cluster_api.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["details"] == [{"field": "status", "value": "cancelled"}]


def test_cancel_a_queued_job_at_once(cluster_api):
    job = cluster_api.post("/jobs", json=tiny_job(name="never-ran")).json()  # no worker up
    cancelled = cluster_api.post(f"/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["attempt"] == 0


def test_sigterm_gives_the_job_back_and_another_worker_finishes_it(cluster_api, cluster_settings,
                                                                  workers):
    leaving = workers("leaving")
    job = cluster_api.post("/jobs", json=long_job("handed-over", epochs=40)).json()
    wait_for(cluster_api, job["id"], lambda j: j["epochs_done"] >= 2, timeout_s=120)
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(30) == 0  # prompt: within the current batch, not the whole job
    requeued = cluster_api.get(f"/jobs/{job['id']}").json()
    assert requeued["status"] == "queued"
    assert "shutting down" in requeued["timeline"][-1]["detail"]
    workers("staying")
    done = wait_for_job(cluster_api, job["id"], timeout_s=180)
    assert done["status"] == "succeeded" and done["attempt"] == 1  # a stop is no attempt
    exactly_once(cluster_settings, done)


def read_events(url: str, key: str, job_id: str, last_id: int, stop_after: int | None):
    """(id, kind, data) from the client's stream, resuming after `last_id`; at most
    `stop_after` events (the stream is then closed), else until the `end` event."""
    events = []
    with Client(url, key) as client:
        for event in client.events(job_id, last_event_id=last_id):
            events.append(event)
            if stop_after and len(events) >= stop_after:
                break
    return events


def test_restarting_the_api_loses_nothing_and_the_stream_resumes(cluster_api, cluster_settings,
                                                               workers):
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start_api() -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "capas.cli", "api", "--host", "127.0.0.1", "--port",
             str(port)], cwd=ROOT, env=cluster_env(cluster_settings))
        deadline = time.monotonic() + 120  # a bound for a loaded host, not a measurement
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/healthz", timeout=5)
                return process
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the API did not start")

    key = cluster_api.headers["Authorization"].split()[1]
    api = start_api()
    try:
        workers("streaming")
        job = httpx.post(f"{url}/jobs", headers={"Authorization": f"Bearer {key}"},
                         json=long_job("streamed", epochs=25), timeout=60).json()
        before = read_events(url, key, job["id"], 0, stop_after=4)
        api.terminate()
        api.wait(30)
        api = start_api()
        after = read_events(url, key, job["id"], before[-1][0], stop_after=None)
    finally:
        api.terminate()
        api.wait(30)
    events = before + after
    ids = [event_id for event_id, kind, _ in events if kind != "end"]
    assert ids == sorted(set(ids)), "no event repeated, in order"
    epochs = [data["epoch"] for _, kind, data in events if kind == "epoch"]
    assert epochs == list(range(1, 26))
    statuses = [data["status"] for _, kind, data in events if kind == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert events[-1][1] == "end" and events[-1][2] == {"status": "succeeded"}
