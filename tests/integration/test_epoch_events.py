"""A job's event stream (`GET /jobs/{id}/events`) shows each epoch once, with its final
values, however often a resumed job trained it: on PostgreSQL and SQLite, with real workers."""

import json
import os
import signal
import uuid

import pytest
import sqlalchemy as sa

from core.db import get_engine, session_scope
from core.migrate import upgrade
from core.models import JobStatus
from core.repositories.jobs import JobRepository
from core.settings import Settings
from tests.conftest import PG_ADMIN_URL, tiny_job
from tests.integration.conftest import stop, wait_for, wait_for_job
from tests.integration.test_job_guarantees import exactly_once, long_job
from tests.integration.test_worker_stop import capas_worker


def stream(client, job_id: str, after: int = 0) -> list[tuple[int, str, dict]]:
    """(id, kind, data) of a finished job's events after `after`, up to the `end` event."""
    response = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(after)})
    events = []
    for block in response.text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            if name:  # not a comment
                fields[name] = value.removeprefix(" ")
        if "event" in fields:
            events.append((int(fields.get("id", 0)), fields["event"],
                           json.loads(fields["data"])))
    assert events[-1][1] == "end"
    return events[:-1]


def epochs(events) -> list[tuple[int, float]]:
    return [(data["epoch"], data["loss"]) for _, kind, data in events if kind == "epoch"]


def test_an_epoch_trained_again_replaces_its_event(cluster_api, cluster_settings):
    job = cluster_api.post("/jobs", json=tiny_job(name="trained-twice")).json()
    with session_scope(cluster_settings) as session:
        jobs = JobRepository(session)
        jobs.claim(job["id"], "first@host/1")
        for epoch in (1, 2, 3):
            jobs.record_epoch(job["id"], epoch, {"loss": 1.0 / epoch}, {})
    with session_scope(cluster_settings) as session:
        jobs = JobRepository(session)
        seen = jobs.events(job["id"], kind="epoch")[-1].id  # a consumer has seen epoch 3
        jobs.requeue(job["id"], "worker lost", worker="first@host/1")
        jobs.claim(job["id"], "second@host/1")
        for epoch in (2, 3, 4):  # resumed from the checkpoint of epoch 1
            jobs.record_epoch(job["id"], epoch, {"loss": 0.1 / epoch}, {})
        jobs.finish(job["id"], JobStatus.succeeded, worker="second@host/1")

    events = stream(cluster_api, job["id"])
    assert epochs(events) == [(1, 1.0), (2, 0.05), (3, 0.1 / 3), (4, 0.025)]
    assert [kind for _, kind, _ in events] == [
        "status", "status", "epoch", "status", "status", "epoch", "epoch", "epoch", "status"]
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(set(ids))
    # Resumed past an event since replaced: the epochs trained again come with their values.
    assert epochs(stream(cluster_api, job["id"], after=seen)) == [
        (2, 0.05), (3, 0.1 / 3), (4, 0.025)]


def test_a_job_resumed_after_a_crash_streams_each_epoch_once(cluster_api, cluster_settings):
    # Checkpoints are written after the first epoch and then only as training ends: the
    # job resumes from epoch 1 and trains again every epoch its first worker recorded.
    crashing = capas_worker(cluster_settings, CAPAS_CHECKPOINT_MIN_INTERVAL_S="3600")
    try:
        job = cluster_api.post("/jobs", json=long_job("crashed-and-resumed", epochs=30)).json()
        wait_for(cluster_api, job["id"], lambda j: j["epochs_done"] >= 4, timeout_s=120)
        os.killpg(crashing.pid, signal.SIGKILL)
        crashing.wait()
    finally:
        stop(crashing)
    resuming = capas_worker(cluster_settings)
    try:
        done = wait_for_job(cluster_api, job["id"], timeout_s=300)
    finally:
        stop(resuming)
    assert done["status"] == "succeeded", done["failure_reason"]
    exactly_once(cluster_settings, done)
    events = stream(cluster_api, job["id"])
    rows = cluster_api.get(f"/jobs/{job['id']}/metrics").json()
    assert epochs(events) == [(row["epoch"], row["loss"]) for row in rows]
    # The best metrics too are those of the epochs as finally trained.
    assert done["best_metrics"]["val_accuracy"] == max(row["val_accuracy"] for row in rows)
    assert done["best_metrics"]["val_loss"] == min(row["val_loss"] for row in rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_at_0007(request, tmp_path):
    """Settings of a fresh database migrated up to revision 0007."""
    url = None
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")  # skips (or fails in CI) without PostgreSQL
        name = f"capas_events_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    settings = Settings(data_dir=tmp_path / "data", database_url=url, broker_url=None)
    settings.ensure_dirs()
    upgrade(settings, "0007")
    yield settings
    get_engine(settings).dispose()
    if url is not None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_migration_keeps_the_last_event_of_each_epoch(database_at_0007):
    settings = database_at_0007
    users = sa.table("users", sa.column("id"), sa.column("name"), sa.column("role"),
                     sa.column("created_at", sa.DateTime))
    jobs = sa.table("jobs", *map(sa.column, (
        "id", "owner_id", "status", "model_name", "framework", "requested_device", "queue",
        "dataset", "attempt", "max_attempts", "max_runtime_s", "epochs_done")),
        sa.column("spec", sa.JSON), sa.column("created_at", sa.DateTime))
    events = sa.table("job_events", sa.column("job_id"), sa.column("kind"), sa.column("status"),
                      sa.column("data", sa.JSON), sa.column("at", sa.DateTime))
    now = sa.func.current_timestamp()
    with get_engine(settings).begin() as connection:
        connection.execute(users.insert().values(id=1, name="admin", role="admin",
                                                 created_at=now))
        connection.execute(jobs.insert().values(
            id="job-1", owner_id=1, status="succeeded", model_name="old", framework="pytorch",
            requested_device="auto", queue="cpu", dataset="builtin:iris", spec={}, attempt=2,
            max_attempts=3, max_runtime_s=60, epochs_done=3, created_at=now))
        for kind, epoch, loss in [("status", None, None), ("epoch", 1, 1.0), ("epoch", 2, 0.9),
                                  ("status", None, None), ("epoch", 2, 0.8), ("epoch", 3, 0.7)]:
            connection.execute(events.insert().values(
                job_id="job-1", kind=kind, status="running", at=now,
                data={"epoch": epoch, "loss": loss} if epoch else None))
    upgrade(settings)
    with session_scope(settings) as session:
        kept = JobRepository(session).events("job-1")
        assert [(event.kind, event.epoch) for event in kept] == [
            ("status", None), ("epoch", 1), ("status", None), ("epoch", 2), ("epoch", 3)]
        assert [event.data["loss"] for event in kept if event.epoch] == [1.0, 0.8, 0.7]
