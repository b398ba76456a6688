"""Routing, the reconciler, cancel, metrics CSV and the event stream on the embedded stack."""

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from core.broker import messages_in_flight
from core.db import session_scope
from core.models import Job, JobStatus, utcnow
from core.repositories.jobs import JobRepository
from core.repositories.workers import WorkerRepository
from core.services.reconciler import Reconciler
from core.services.training import TrainingService
from tests.conftest import free_port, tiny_job


def submit(api, **overrides) -> dict:
    response = api.post("/jobs", json={**tiny_job(), **overrides})
    assert response.status_code == 202, response.text
    return response.json()


def set_job(settings, job_id: str, **values) -> None:
    with session_scope(settings) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def test_cuda_without_a_cuda_worker_is_refused_and_auto_falls_back_to_cpu(api):
    response = api.post("/jobs", json={**tiny_job(), "device": "cuda"})
    assert response.status_code == 409
    assert response.json()["error"]["details"] == [{"field": "device", "value": "cuda"}]
    assert submit(api, device="auto")["queue"] == "cpu"


def test_auto_routes_to_a_live_cuda_worker_and_cpu_stays_on_cpu(api):
    with session_scope(api.settings) as session:
        WorkerRepository(session).announce("gpu-node", ["cuda"])
    assert submit(api, device="auto")["queue"] == "cuda"
    assert submit(api, device="cuda")["queue"] == "cuda"
    assert submit(api, device="cpu")["queue"] == "cpu"


def test_a_silent_cuda_worker_is_not_counted(api):
    with session_scope(api.settings) as session:
        WorkerRepository(session).announce("gpu-node", ["cuda"])
    long_silent = utcnow() - timedelta(seconds=api.settings.worker_alive_s + 1)
    with session_scope(api.settings) as session:
        from core.models import WorkerNode

        session.execute(update(WorkerNode).values(last_seen=long_silent))
    assert submit(api, device="auto")["queue"] == "cpu"


def test_the_message_of_a_submitted_job_is_in_flight(api):
    job = submit(api)
    assert job["id"] in messages_in_flight(api.settings)
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "queued"


def test_the_reconciler_resends_a_queued_job_whose_message_is_gone(api):
    job = submit(api)
    for message in (api.settings.broker_dir / "queue").iterdir():
        message.unlink()  # the broker lost it
    long_ago = utcnow() - timedelta(minutes=5)
    set_job(api.settings, job["id"], created_at=long_ago, sent_at=long_ago)
    Reconciler(api.settings, "node", ["cpu"]).run_once()
    assert job["id"] in messages_in_flight(api.settings)
    # A message still in flight is not sent again.
    set_job(api.settings, job["id"], sent_at=long_ago)
    Reconciler(api.settings, "node", ["cpu"]).run_once()
    assert len(list((api.settings.broker_dir / "queue").iterdir())) == 1


def test_a_stale_running_job_is_requeued_then_failed_after_max_attempts(api):
    job = submit(api, max_attempts=2)
    stale = utcnow() - timedelta(seconds=api.settings.heartbeat_stale_s + 5)
    set_job(api.settings, job["id"], status="running", worker="gone@host/1", attempt=1,
            heartbeat_at=stale, started_at=stale)
    Reconciler(api.settings, "node", ["cpu"]).run_once()
    requeued = api.get(f"/jobs/{job['id']}").json()
    assert requeued["status"] == "queued" and requeued["worker"] is None
    assert "worker lost" in requeued["timeline"][-1]["detail"]
    set_job(api.settings, job["id"], status="running", worker="gone@host/2", attempt=2,
            heartbeat_at=stale)
    Reconciler(api.settings, "node", ["cpu"]).run_once()
    failed = api.get(f"/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["failure_reason"].endswith("gave up after 2 attempts")


def test_a_restarted_node_recovers_the_jobs_it_held_at_once(api):
    job = submit(api)
    earlier = utcnow() - timedelta(seconds=1)
    set_job(api.settings, job["id"], status="running", worker="node@host/7", attempt=1,
            heartbeat_at=utcnow(), started_at=earlier)
    Reconciler(api.settings, "node@host", ["cpu"]).startup()
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "queued"


def test_cancel_a_running_job_sets_its_stop_request(api):
    job = submit(api)
    set_job(api.settings, job["id"], status="running", worker="w@h/1", attempt=1,
            heartbeat_at=utcnow())
    assert api.post(f"/jobs/{job['id']}/cancel").json()["status"] == "running"
    with session_scope(api.settings) as session:
        assert JobRepository(session).beat(job["id"], "w@h/1") == "cancel"
        assert JobRepository(session).beat(job["id"], "other@h/2") == "lost"


def test_max_attempts_is_checked(api):
    response = api.post("/jobs", json={**tiny_job(), "max_attempts": 0})
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"field": "max_attempts", "value": 0, "message": "input should be greater than 0"}]


def _finish_with_epochs(api, job_id: str, epochs: int) -> None:
    with session_scope(api.settings) as session:
        jobs = JobRepository(session)
        jobs.claim(job_id, "w@h/1")
        for epoch in range(1, epochs + 1):
            jobs.record_epoch(job_id, epoch, {"loss": 1.0 / epoch, "val_loss": 2.0 / epoch,
                                              "accuracy": 0.5}, {})
        jobs.record_epoch(job_id, 2, {"loss": 0.25, "val_loss": 0.5}, {})  # a resumed epoch
        jobs.finish(job_id, JobStatus.succeeded, worker="w@h/1")


def test_metrics_csv_has_one_row_per_epoch(api):
    job = submit(api)
    _finish_with_epochs(api, job["id"], 3)
    response = api.get(f"/jobs/{job['id']}/metrics.csv")
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("epoch,loss,val_loss,accuracy,val_accuracy,mae,val_mae")
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]
    assert lines[2].split(",")[1] == "0.25"


def _events(text: str) -> list[tuple[str, str]]:
    blocks = [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
              for block in text.strip().split("\n\n")]
    return [(b.get("id", ""), b["event"]) for b in blocks if "event" in b]


def test_the_event_stream_replays_and_resumes_after_last_event_id(api):
    job = submit(api)
    _finish_with_epochs(api, job["id"], 3)
    events = _events(api.get(f"/jobs/{job['id']}/events").text)
    kinds = [kind for _, kind in events]
    # The resumed epoch's event replaces the first one: each epoch once.
    assert kinds == ["status", "status", "epoch", "epoch", "epoch", "status", "end"]
    third = events[3][0]
    resumed = _events(api.get(f"/jobs/{job['id']}/events",
                              headers={"Last-Event-ID": third}).text)
    assert resumed == events[4:]
    assert api.get("/jobs/nope/events").status_code == 404


def test_a_member_has_a_limited_number_of_active_jobs(api):
    member_key = api.post("/users", json={"name": "busy"}).json()["api_key"]
    member = TestClient(api.app, headers={"Authorization": f"Bearer {member_key}"})
    limit = api.settings.max_concurrent_jobs
    for _ in range(limit):
        assert member.post("/jobs", json=tiny_job()).status_code == 202
    refused = member.post("/jobs", json=tiny_job())
    assert refused.status_code == 429
    assert refused.json()["error"]["details"] == [{"field": "jobs", "value": limit}]
    first = member.get("/jobs").json()["items"][0]["id"]
    member.post(f"/jobs/{first}/cancel")
    assert member.post("/jobs", json=tiny_job()).status_code == 202
    admins_own = tiny_job(name="admins-own")  # the name `tiny` is the member's
    assert api.post("/jobs", json=admins_own).status_code == 202  # admins are not limited


def test_a_store_that_stays_down_fails_the_job_after_its_attempts(api):
    job = submit(api, max_attempts=2)
    # The worker's host reaches no object store: a port nothing listens on.
    worker_settings = api.settings.model_copy(update={
        "artifact_url": "s3://capas/jobs", "s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    TrainingService(worker_settings).run(job["id"], "unit-worker")
    first = api.get(f"/jobs/{job['id']}").json()
    assert first["status"] == "queued" and first["attempt"] == 1
    assert "re-queued after a transient error: artifact store" in first["timeline"][-1]["detail"]
    assert job["id"] in messages_in_flight(api.settings)  # sent again, not left for later

    TrainingService(worker_settings).run(job["id"], "unit-worker")
    second = api.get(f"/jobs/{job['id']}").json()
    assert second["status"] == "failed" and second["attempt"] == 2
    assert second["failure_reason"].startswith("a transient error: artifact store")
    assert second["failure_reason"].endswith("gave up after 2 attempts")
