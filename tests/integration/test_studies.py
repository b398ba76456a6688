"""Studies on the real PostgreSQL, Redis and Celery workers: every trial accounted for, only the
best published, a pruned trial saying why, a cancelled study leaving nothing running, and a
study that survives a worker killed mid-study."""

import os
import signal
import time
import uuid

from sqlalchemy import select

from core.db import session_scope
from core.models import JobMetric
from tests.conftest import tiny_job
from tests.integration.test_job_guarantees import long_job

ACTIVE = ("queued", "running")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def wait_for_study(client, study_id: str, done, timeout_s: float = 300) -> dict:
    """Poll the study until `done(study)`; fail with the last state seen after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        study = client.get(f"/studies/{study_id}").json()
        if done(study):
            return study
        time.sleep(0.2)
    raise TimeoutError(f"study {study_id} not as expected after {timeout_s} s: {study}")


def over(study: dict) -> bool:
    return study["status"] != "running" and not any(t["status"] in ACTIVE
                                                    for t in study["trials"])


def test_a_study_runs_every_trial_and_publishes_only_the_best(cluster_api, worker):
    name = unique("study-best")
    response = cluster_api.post("/studies", json={
        "name": "learning rates", "base": tiny_job(epochs=2, name=name),
        "space": {"training.optimizer.learning_rate": {"grid": [0.005, 0.05, 0.1]}},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "max_concurrent": 2, "publish": "best"})
    assert response.status_code == 202, response.text
    study = wait_for_study(cluster_api, response.json()["id"], over)
    assert study["status"] == "finished" and study["trials_started"] == 3
    assert [t["status"] for t in study["trials"]] == ["succeeded"] * 3
    assert all(t["value"] is not None and t["epochs_done"] == 2 for t in study["trials"])
    best = study["best"]
    assert best["value"] == max(t["value"] for t in study["trials"])
    assert best["model_version"] == 1
    published = [t["number"] for t in study["trials"] if t["model_version"] is not None]
    assert published == [best["number"]]
    model = cluster_api.get(f"/models/{name}").json()
    assert model["latest_version"] == 1
    card = cluster_api.get(f"/models/{name}/versions/1").json()
    assert card["job_id"] == best["job_id"]
    alias = cluster_api.post(f"/studies/{study['id']}/publish", json={"alias": "production"})
    assert alias.status_code == 200, alias.text
    assert alias.json()["version"] == 1 and alias.json()["alias"] == "production"
    csv = cluster_api.get(f"/studies/{study['id']}/trials.csv").text.splitlines()
    assert len(csv) == 4 and all(",succeeded," in line for line in csv[1:])


def test_a_trial_behind_the_median_is_pruned_and_says_why(cluster_api, worker):
    """And with `publish: all`, the trial that succeeded published its version as it ended."""
    response = cluster_api.post("/studies", json={
        "name": "pruned", "base": tiny_job(epochs=4, name=unique("study-pruned")),
        "space": {"training.optimizer": {"grid": [{"type": "adam", "learning_rate": 0.05},
                                                  {"type": "sgd", "learning_rate": 1e-5}]}},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "max_concurrent": 1, "pruner": {"type": "median", "startup_trials": 1},
        "publish": "all"})
    assert response.status_code == 202, response.text
    study = wait_for_study(cluster_api, response.json()["id"], over)
    good, bad = study["trials"]
    assert good["status"] == "succeeded" and good["epochs_done"] == 4
    assert good["model_version"] == 1 and bad["model_version"] is None  # publish: all
    assert bad["status"] == "pruned", bad
    assert bad["pruned_reason"].startswith("pruned at epoch 1 by the median pruner: val_loss ")
    job = cluster_api.get(f"/jobs/{bad['job_id']}").json()
    assert job["status"] == "cancelled" and job["epochs_done"] == 1
    assert job["failure_reason"] == bad["pruned_reason"]


def test_cancelling_a_study_leaves_no_trial_running(cluster_api, worker):
    base = long_job(unique("study-cancelled"), epochs=30)
    response = cluster_api.post("/studies", json={
        "name": "cancelled", "base": base, "space": {"training.seed": {"grid": [1, 2, 3, 4]}},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "max_concurrent": 2})
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]
    wait_for_study(cluster_api, study_id, lambda s: any(
        t["status"] == "running" and t["epochs_done"] >= 1 for t in s["trials"]))
    cancelled = cluster_api.post(f"/studies/{study_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    study = wait_for_study(cluster_api, study_id, over, timeout_s=60)
    assert study["trials_started"] == 2
    assert {t["status"] for t in study["trials"]} <= {"cancelled", "succeeded"}
    assert "cancelled" in {t["status"] for t in study["trials"]}
    events = cluster_api.get(f"/studies/{study_id}/events")
    assert events.status_code == 200
    assert events.text.rstrip().endswith('event: end\ndata: {"status": "cancelled"}')


def test_a_twelve_trial_study_survives_a_worker_killed_mid_study(cluster_api, cluster_settings,
                                                                 workers):
    doomed, _ = workers("doomed-study"), workers("steady-study")
    response = cluster_api.post("/studies", json={
        "name": "survivor", "base": long_job(unique("study-survivor"), epochs=6),
        "space": {"training.seed": {"grid": list(range(12))}},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "max_concurrent": 3, "publish": "none"})
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]

    def doomed_mid_trial(study: dict) -> bool:
        return study["trials_started"] >= 4 and any(
            t["status"] == "running" and t["epochs_done"] >= 1
            and (cluster_api.get(f"/jobs/{t['job_id']}").json()["worker"] or "")
            .startswith("doomed-study@") for t in study["trials"])

    wait_for_study(cluster_api, study_id, doomed_mid_trial)
    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its pool child, mid-trial
    doomed.wait()
    study = wait_for_study(cluster_api, study_id, over, timeout_s=600)
    assert study["status"] == "finished" and study["trials_started"] == 12
    assert [t["number"] for t in study["trials"]] == list(range(12))
    assert [t["status"] for t in study["trials"]] == ["succeeded"] * 12
    assert sorted(t["params"]["training.seed"] for t in study["trials"]) == list(range(12))
    assert all(t["model_version"] is None for t in study["trials"])  # publish: none
    with session_scope(cluster_settings) as session:
        for trial in study["trials"]:
            epochs = list(session.scalars(select(JobMetric.epoch)
                                          .where(JobMetric.job_id == trial["job_id"])
                                          .order_by(JobMetric.epoch)))
            assert epochs == list(range(1, 7)), trial
    resumed = [t for t in study["trials"]
               if cluster_api.get(f"/jobs/{t['job_id']}").json()["attempt"] == 2]
    assert resumed, "no trial was held by the killed worker"
