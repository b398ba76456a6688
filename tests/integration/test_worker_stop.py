"""Stopping `capas worker` (SIGTERM, Ctrl-C) is not a failed attempt: the running job goes back
to the queue once, whole, and another worker finishes it. Real PostgreSQL, Redis and workers."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.integration.conftest import cluster_env, stop, wait_for, wait_for_job
from tests.integration.test_job_guarantees import exactly_once, long_job

# The installed command; where the project runs uninstalled, the same by module.
_SCRIPT = Path(sys.executable).parent / "capas"
CAPAS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "capas"]


def capas_worker(settings, **env: str) -> subprocess.Popen:
    """`capas worker -Q cpu` (it becomes the Celery worker), in its own process group."""
    return subprocess.Popen([*CAPAS, "worker", "-Q", "cpu"], cwd=ROOT,
                            env={**cluster_env(settings), **env}, start_new_session=True)


def timeline(job: dict) -> list[str]:
    return [event["status"] for event in job["timeline"]]


def test_sigterm_hands_the_running_job_back_once_and_costs_no_attempt(cluster_api,
                                                                     cluster_settings):
    # Only the hand-back is under test: on a loaded host a heartbeat may come late, and the
    # fast recovery of the other tests would call this live worker lost.
    leaving = capas_worker(cluster_settings, CAPAS_HEARTBEAT_STALE_S="120")
    try:
        job = cluster_api.post("/jobs", json=long_job("handed-back", epochs=150)).json()
        wait_for(cluster_api, job["id"], lambda j: j["epochs_done"] >= 2, timeout_s=120)
        asked = time.monotonic()
        leaving.send_signal(signal.SIGTERM)
        # Generous: a stop takes seconds; a worker that trains on is killed at 30 s elsewhere.
        assert leaving.wait(20) == 0
        print(f"capas worker stopped {time.monotonic() - asked:.1f} s after SIGTERM, "
              "with a job running")
    finally:
        stop(leaving)
    handed_back = cluster_api.get(f"/jobs/{job['id']}").json()
    assert handed_back["status"] == "queued" and handed_back["attempt"] == 0
    assert timeline(handed_back) == ["queued", "running", "queued"]  # not taken again
    assert "shutting down" in handed_back["timeline"][-1]["detail"]
    assert 2 <= handed_back["epochs_done"] < 150
    follower = capas_worker(cluster_settings)
    try:
        done = wait_for_job(cluster_api, job["id"], timeout_s=300)
    finally:
        stop(follower)
    assert done["status"] == "succeeded" and done["attempt"] == 1, done["failure_reason"]
    assert timeline(done) == ["queued", "running", "queued", "running", "succeeded"]
    exactly_once(cluster_settings, done)


def test_ctrl_c_twice_never_fails_the_job(cluster_api, cluster_settings):
    """The second Ctrl-C is Celery's cold shutdown, which kills the job where it stands: the
    job still owes nothing for it, even with a single attempt allowed."""
    leaving = capas_worker(cluster_settings)
    try:
        body = {**long_job("stopped-twice", epochs=150), "max_attempts": 1}
        job = cluster_api.post("/jobs", json=body).json()
        wait_for(cluster_api, job["id"], lambda j: j["epochs_done"] >= 2, timeout_s=120)
        leaving.send_signal(signal.SIGINT)
        time.sleep(0.2)  # a person's second press, while the job is being handed back
        leaving.send_signal(signal.SIGINT)
        leaving.wait(20)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the pool child too, if it is left
            os.killpg(leaving.pid, signal.SIGKILL)
        leaving.wait()
    follower = capas_worker(cluster_settings)
    try:
        done = wait_for_job(cluster_api, job["id"], timeout_s=300)
    finally:
        stop(follower)
    assert done["status"] == "succeeded", done["failure_reason"]
    assert done["attempt"] == 1
    exactly_once(cluster_settings, done)
