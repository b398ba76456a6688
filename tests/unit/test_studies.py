"""Studies without a worker: the definition's parsing and errors, how a trial's job is made from
the space, the checks at submit, and the driving, pruning, budget and publishing decisions, with
trials finished by hand."""

from datetime import UTC, datetime, timedelta

import pytest

from core.db import session_scope
from core.errors import Invalid
from core.models import JobStatus
from core.repositories.jobs import JobRepository
from core.repositories.studies import StudyRepository
from core.services.auth import AuthService
from core.services.studies import StudyService
from core.studies import OBJECTIVE_METRICS, PathError, apply_params, parse_path, parse_study
from ml.epochs import metric_catalog
from tests.conftest import EXAMPLES, example, tiny_job

OBJECTIVE = {"metric": "val_accuracy", "direction": "maximize"}


def study(space: dict, **more) -> dict:
    return {"name": "lr-race", "base": tiny_job(epochs=2, name="race"), "space": space,
            "objective": OBJECTIVE, **more}


def details(error: Invalid) -> dict:
    return {detail["field"]: detail.get("value") for detail in error.details}


# The definition.

def test_objective_metrics_are_the_models_metrics_of_an_epoch():
    assert OBJECTIVE_METRICS == tuple(m["name"] for m in metric_catalog()
                                      if not m["bookkeeping"])
    assert "val_accuracy" in OBJECTIVE_METRICS and "duration_s" not in OBJECTIVE_METRICS


@pytest.mark.parametrize(("body", "field", "value"), [
    (study({"training.seed": {"grid": [1]}}, objective={"metric": "val_acc",
                                                         "direction": "maximize"}),
     "objective.metric", "val_acc"),
    (study({"training.seed": {"grid": [1]}}, objective={"metric": "loss", "direction": "up"}),
     "objective.direction", "up"),
    (study({"trainig.seed": {"grid": [1]}}), "space", {"trainig.seed": {"grid": [1]}}),
    (study({"training.seed": {"grid": [1], "choice": [2]}}), "space.training.seed",
     {"grid": [1], "choice": [2]}),
    (study({"training.optimizer.learning_rate": {"loguniform": [0, 1]}}, max_trials=3),
     "space.training.optimizer.learning_rate", {"loguniform": [0, 1]}),
    (study({"training.seed": {"int": [5, 1]}}, max_trials=3), "space.training.seed",
     {"int": [5, 1]}),
    (study({"training.seed": {"uniform": [0, 1], "step": 2}}, max_trials=3),
     "space.training.seed", {"uniform": [0, 1], "step": 2}),
    (study({"training.seed": {"grid": [1]}}, sampler="bayes"), "sampler", "bayes"),
    (study({"training.seed": {"grid": [1]}}, pruner="hyperband"), "pruner", "hyperband"),
    (study({"training.seed": {"int": [1, 9]}}), "max_trials", None),
    (study({"training.seed": {"grid": [1]}}, max_concurrent=0), "max_concurrent", 0),
])
def test_a_bad_definition_names_the_field_and_echoes_the_value(body, field, value):
    with pytest.raises(Invalid) as refused:
        parse_study(body)
    assert field in refused.value.message
    found = details(refused.value)
    assert any(name.startswith(field) for name in found), found
    assert value in [v for name, v in found.items() if name.startswith(field)]


def test_grid_points_go_in_turn_and_set_the_default_budget():
    definition = parse_study(study({
        "training.optimizer": {"grid": [{"type": "sgd"}, {"type": "adam"}]},
        "framework": {"grid": ["pytorch", "tensorflow"]}}))
    assert definition.trials == 4
    points = [definition.grid_point(n) for n in range(5)]
    assert points[0] == {"training.optimizer": {"type": "sgd"}, "framework": "pytorch"}
    assert points[1] == {"training.optimizer": {"type": "sgd"}, "framework": "tensorflow"}
    assert points[3] == {"training.optimizer": {"type": "adam"}, "framework": "tensorflow"}
    assert points[4] == points[0]


def test_ranges_are_checked_at_their_ends():
    definition = parse_study(study({"model.layers[0].units": {"int": [4, 30], "step": 4},
                                    "training.optimizer.learning_rate":
                                        {"loguniform": [0.001, 0.1]}}, max_trials=5))
    assert definition.space["model.layers[0].units"].corners() == [4, 28]
    assert len(definition.corner_combinations()) == 4


def test_values_are_put_at_their_paths_shorter_paths_first():
    base = {"model": {"layers": [{"type": "dense", "units": 3}]}}
    body = apply_params(base, {"training.optimizer.learning_rate": 0.1,
                               "training.optimizer": {"type": "sgd", "momentum": 0.9},
                               "model.layers[0].units": 8, "framework": "tensorflow"})
    assert body == {"model": {"layers": [{"type": "dense", "units": 8}]},
                    "training": {"optimizer": {"type": "sgd", "momentum": 0.9,
                                               "learning_rate": 0.1}},
                    "framework": "tensorflow"}
    assert base["model"]["layers"][0]["units"] == 3  # the base is left as it was
    assert parse_path("model.layers[12].units") == ["model", "layers", 12, "units"]
    with pytest.raises(PathError, match=r"model.layers\[5\].units: model.layers is a list of "
                                        r"1, with no item 5"):
        apply_params(base, {"model.layers[5].units": 2})


# Submitting through the API.

def test_a_space_that_makes_an_invalid_job_is_refused_whole_naming_path_and_value(api):
    response = api.post("/studies", json=study({
        "training.optimizer.learning_rate": {"grid": [0.01, -0.5]},
        "framework": {"grid": ["pytorch", "tensorflow"]}}))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "training.optimizer.learning_rate=-0.5" in error["message"]
    found = {d["field"]: d["value"] for d in error["details"]}
    assert found["space.training.optimizer.learning_rate"] == -0.5
    assert "training.optimizer.learning_rate" in found  # the job's own issue
    assert api.get("/studies").json()["items"] == []
    assert api.get("/jobs").json()["items"] == []  # nothing queued


def test_a_path_missing_from_the_base_is_refused(api):
    response = api.post("/studies", json=study({"model.layers[9].units": {"grid": [4, 8]}}))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0] == {
        "field": "space.model.layers[9].units", "value": 4}


def test_submit_starts_trials_up_to_max_concurrent_and_cancel_stops_them(api):
    response = api.post("/studies", json=study(
        {"training.optimizer.learning_rate": {"grid": [0.01, 0.03, 0.1]}}, max_concurrent=2))
    assert response.status_code == 202, response.text
    submitted = response.json()
    assert response.headers["Location"] == f"/studies/{submitted['id']}"
    assert submitted["status"] == "running" and submitted["max_trials"] == 3
    assert [(t["number"], t["status"], t["params"]) for t in submitted["trials"]] == [
        (0, "queued", {"training.optimizer.learning_rate": 0.01}),
        (1, "queued", {"training.optimizer.learning_rate": 0.03})]
    job = api.get(f"/jobs/{submitted['trials'][1]['job_id']}").json()
    assert job["spec"]["training"]["optimizer"]["learning_rate"] == 0.03
    listed = api.get("/studies").json()["items"]
    assert [(s["id"], s["counts"]) for s in listed] == [(submitted["id"], {"queued": 2})]
    csv = api.get(f"/studies/{submitted['id']}/trials.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("number,job_id,status,value,training.optimizer.learning_rate,")
    assert lines[1].split(",")[2:5] == ["queued", "", "0.01"]

    cancelled = api.post(f"/studies/{submitted['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert {t["status"] for t in cancelled["trials"]} == {"cancelled"}
    again = api.post(f"/studies/{submitted['id']}/cancel")
    assert again.status_code == 409
    with session_scope(api.settings) as session:
        StudyService(session, api.settings).advance(submitted["id"])
    assert api.get(f"/studies/{submitted['id']}").json()["trials_started"] == 2


def test_another_member_cannot_see_cancel_or_publish_a_study(api):
    submitted = api.post("/studies", json=study({"training.seed": {"grid": [1, 2]}})).json()
    other = api.post("/users", json={"name": "bo", "role": "member"}).json()["api_key"]
    headers = {"Authorization": f"Bearer {other}"}
    for method, path in [("GET", ""), ("POST", "/cancel"), ("POST", "/publish"),
                         ("GET", "/trials.csv"), ("GET", "/events")]:
        response = api.request(method, f"/studies/{submitted['id']}{path}", headers=headers)
        assert response.status_code == 404, (method, path, response.text)
    assert api.get("/studies", headers=headers).json()["items"] == []
    assert api.get(f"/studies/{submitted['id']}").json()["status"] == "running"


# Driving, with the trials finished by hand.

def finish_trial(settings, job_id: str, curve: list[float], status=JobStatus.succeeded):
    """Record the trial's epochs of val_accuracy and end its job as a worker would."""
    with session_scope(settings) as session:
        jobs = JobRepository(session)
        assert jobs.claim(job_id, "hand/1")
        for epoch, value in enumerate(curve, start=1):
            jobs.record_epoch(job_id, epoch, {"loss": 1.0, "val_accuracy": value}, {})
        jobs.finish(job_id, status, worker="hand/1",
                    final_metrics={"val_accuracy": curve[-1]} if curve else None,
                    unpublished=None)


def trial_jobs(settings, study_id: str) -> list:
    with session_scope(settings) as session:
        return StudyRepository(session).trials(study_id)


def advance(settings, study_id: str, clock=None) -> None:
    with session_scope(settings) as session:
        StudyService(session, settings, *([clock] if clock else [])).advance(study_id)


def test_each_ended_trial_starts_the_next_until_the_budget_then_the_best_is_known(api):
    settings = api.settings
    submitted = api.post("/studies", json=study(
        {"training.optimizer.learning_rate": {"loguniform": [0.001, 0.1]}},
        max_trials=3, max_concurrent=1, sampler="tpe", publish="none")).json()
    study_id = submitted["id"]
    for value in (0.5, 0.9, 0.7):
        queued = [job for job in trial_jobs(settings, study_id) if job.status == "queued"]
        assert len(queued) == 1  # never more than max_concurrent
        finish_trial(settings, queued[0].id, [value / 2, value])
        advance(settings, study_id)
    shown = api.get(f"/studies/{study_id}").json()
    assert shown["status"] == "finished" and shown["finished_at"] is not None
    assert [t["value"] for t in shown["trials"]] == [0.5, 0.9, 0.7]
    rates = [t["params"]["training.optimizer.learning_rate"] for t in shown["trials"]]
    assert len(set(rates)) == 3 and all(0.001 <= rate <= 0.1 for rate in rates)
    assert shown["best"]["number"] == 1 and shown["best"]["value"] == 0.9
    assert shown["trials"][1]["curve"] == [{"epoch": 1, "value": 0.45},
                                           {"epoch": 2, "value": 0.9}]
    assert shown["best"]["model_version"] is None  # publish: none
    publish = api.post(f"/studies/{study_id}/publish", json={"alias": "production"})
    assert publish.status_code == 409  # its trial kept nothing to publish (trained by hand)


def test_a_trial_below_the_median_is_pruned_with_its_reason(api):
    settings = api.settings
    submitted = api.post("/studies", json=study(
        {"training.seed": {"grid": [1, 2, 3]}}, max_concurrent=2,
        pruner={"type": "median", "startup_trials": 1})).json()
    first, second = trial_jobs(settings, submitted["id"])
    finish_trial(settings, first.id, [0.6, 0.8])
    with session_scope(settings) as session:
        jobs = JobRepository(session)
        jobs.claim(second.id, "hand/1")
        jobs.record_epoch(second.id, 1, {"loss": 1.0, "val_accuracy": 0.7}, {})
    with session_scope(settings) as session:
        service = StudyService(session, settings)
        assert service.prune_reason(trial_jobs(settings, submitted["id"])[1], 1) is None
    with session_scope(settings) as session:
        JobRepository(session).record_epoch(second.id, 2, {"loss": 1.0, "val_accuracy": 0.3}, {})
    with session_scope(settings) as session:
        reason = StudyService(session, settings).prune_reason(second, 2)
    assert reason == ("pruned at epoch 2 by the median pruner: val_accuracy 0.3 is worse than "
                      "the median 0.8 of the completed trials at that epoch")


def test_successive_halving_prunes_a_trial_behind_at_a_rung(api):
    settings = api.settings
    submitted = api.post("/studies", json=study(
        {"training.seed": {"grid": [1, 2, 3, 4]}}, max_concurrent=4,
        pruner={"type": "asha", "min_epochs": 1, "reduction_factor": 2})).json()
    jobs = trial_jobs(settings, submitted["id"])
    finish_trial(settings, jobs[0].id, [0.9, 0.95])
    finish_trial(settings, jobs[1].id, [0.8, 0.9])
    with session_scope(settings) as session:
        JobRepository(session).claim(jobs[2].id, "hand/1")
        JobRepository(session).record_epoch(jobs[2].id, 1, {"val_accuracy": 0.2}, {})
    with session_scope(settings) as session:
        reason = StudyService(session, settings).prune_reason(jobs[2], 1)
    assert reason is not None and reason.startswith("pruned at epoch 1 by successive halving")


def test_no_trial_starts_past_the_wall_time_and_the_study_ends_with_its_last(api):
    settings = api.settings
    submitted = api.post("/studies", json=study(
        {"training.seed": {"grid": [1, 2, 3]}}, max_concurrent=1, max_wall_time_s=60)).json()
    created = datetime.fromisoformat(submitted["created_at"])
    later = lambda: created + timedelta(seconds=61)  # noqa: E731
    (first,) = trial_jobs(settings, submitted["id"])
    advance(settings, submitted["id"], clock=later)
    assert len(trial_jobs(settings, submitted["id"])) == 1
    finish_trial(settings, first.id, [0.5])
    advance(settings, submitted["id"], clock=lambda: created + timedelta(seconds=30))
    assert len(trial_jobs(settings, submitted["id"])) == 2  # within the budget: the next
    for job in trial_jobs(settings, submitted["id"])[1:]:
        finish_trial(settings, job.id, [0.6])
    advance(settings, submitted["id"], clock=later)
    shown = api.get(f"/studies/{submitted['id']}").json()
    assert shown["status"] == "finished" and shown["trials_started"] == 2
    assert datetime.fromisoformat(shown["finished_at"]) == later()


def test_in_a_space_too_large_to_check_an_invalid_trial_fails_alone(api):
    settings = api.settings
    response = api.post("/studies", json=study(
        {"model.layers[0].units": {"grid": [8, 0]},
         "training.seed": {"choice": list(range(100))},
         "training.batch_size": {"choice": [8, 16, 32]}},
        max_trials=3, max_concurrent=2))
    assert response.status_code == 202, response.text
    trials = response.json()["trials"]
    assert [t["status"] for t in trials] == ["queued", "failed"]
    assert trials[1]["job_id"] is None and trials[1]["params"]["model.layers[0].units"] == 0
    assert "model.layers[0].units" in trials[1]["failure_reason"]
    finish_trial(settings, trials[0]["job_id"], [0.5])
    advance(settings, response.json()["id"])
    shown = api.get(f"/studies/{response.json()['id']}").json()
    assert [t["status"] for t in shown["trials"]] == ["succeeded", "failed", "queued"]


def test_trials_count_in_the_members_job_quota(api):
    settings = api.settings
    with session_scope(settings) as session:
        _, key = AuthService(session).create_user("cy", "member")
    headers = {"Authorization": f"Bearer {key}"}
    settings.max_concurrent_jobs = 1
    submitted = api.post("/studies", headers=headers, json=study(
        {"training.seed": {"grid": [1, 2, 3]}}, max_concurrent=3) | {
        "base": tiny_job(epochs=2, name="cy-race")})
    assert submitted.status_code == 202, submitted.text
    assert len(submitted.json()["trials"]) == 1
    refused = api.post("/jobs", headers=headers, json=tiny_job(name="cy-race"))
    assert refused.status_code == 429
    finish_trial(settings, submitted.json()["trials"][0]["job_id"], [0.5])
    advance(settings, submitted.json()["id"])
    assert len(api.get(f"/studies/{submitted.json()['id']}",
                       headers=headers).json()["trials"]) == 2


def test_the_stored_definition_reads_back(api):
    submitted = api.post("/studies", json=study(
        {"training.seed": {"int": [1, 9], "step": 2}}, max_trials=2)).json()
    assert submitted["definition"]["space"] == {"training.seed": {"int": [1, 9], "step": 2}}
    assert submitted["definition"]["max_trials"] == 2
    assert datetime.fromisoformat(submitted["created_at"]).tzinfo == UTC


@pytest.mark.parametrize("name", sorted(path.name for path in (EXAMPLES / "studies").glob("*")))
def test_every_example_study_is_accepted(api, name):
    response = api.post("/studies", json=example(f"studies/{name}"))
    assert response.status_code == 202, response.text
    assert response.json()["trials"], name
    assert api.post(f"/studies/{response.json()['id']}/cancel").status_code == 200


def test_importance_says_which_dimension_moves_the_objective(api):
    settings = api.settings
    submitted = api.post("/studies", json=study(
        {"training.batch_size": {"grid": [8, 16]}, "training.seed": {"grid": [1, 2, 3]}},
        max_concurrent=6)).json()
    path = f"/studies/{submitted['id']}/importance"
    assert api.get(path).json() == {"importance": {}, "trials": 0}
    for job in trial_jobs(settings, submitted["id"]):
        value = (0.9 if job.trial_params["training.batch_size"] == 8 else 0.5) \
            + job.trial_params["training.seed"] / 1000
        finish_trial(settings, job.id, [value])
    shown = api.get(path).json()
    assert shown["trials"] == 6
    assert shown["importance"]["training.batch_size"] > 0.9
    assert shown["importance"]["training.seed"] < 0.1


def test_the_reconciler_starts_the_next_trials_when_no_worker_did(api):
    from core.services.reconciler import Reconciler

    settings = api.settings
    submitted = api.post("/studies", json=study({"training.seed": {"grid": [1, 2]}},
                                                max_concurrent=1)).json()
    (first,) = trial_jobs(settings, submitted["id"])
    finish_trial(settings, first.id, [0.5])  # its worker died before it started the next
    Reconciler(settings, "reconciler-test", ["cpu"]).run_once()
    assert [job.trial_number for job in trial_jobs(settings, submitted["id"])] == [0, 1]
