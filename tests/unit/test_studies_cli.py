"""`capas study` against the app in this process (no worker): submit, list, show, watch a study
that is over, cancel, and publish refused while no trial has succeeded."""

import json

from tests.conftest import tiny_job


def study_file(tmp_path) -> str:
    path = tmp_path / "study.json"
    path.write_text(json.dumps({
        "name": "seeds", "base": tiny_job(epochs=2, name="cli-study"),
        "space": {"training.seed": {"grid": [1, 2, 3]},
                  "training.optimizer.learning_rate": {"loguniform": [0.001, 0.1]}},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "max_trials": 3, "max_concurrent": 2}))
    return str(path)


def test_study_commands(capas, tmp_path):
    submitted = capas("study", "submit", study_file(tmp_path))
    assert submitted.exit_code == 0, submitted.output
    study_id = submitted.stdout.split()[1]
    assert submitted.stdout.startswith(f"study {study_id} started: 3 trials, at most 2 at once")

    listed = capas("study", "list")
    assert study_id in listed.stdout and "2 queued" in listed.stdout

    shown = capas("study", "show", study_id)
    assert "training.seed=1" in shown.stdout and "training.seed=2" in shown.stdout
    assert json.loads(capas("study", "show", study_id, "--json").stdout)["id"] == study_id

    refused = capas("study", "publish", study_id, "--alias", "production")
    assert refused.exit_code == 1
    assert "has no succeeded trial to publish yet" in refused.stderr

    cancelled = capas("study", "cancel", study_id)
    assert cancelled.stdout == f"study {study_id}: cancelled\n"
    watched = capas("study", "watch", study_id)
    assert watched.exit_code == 1
    assert "cancelled" in watched.stdout
    assert watched.stderr == "error: study cancelled with no succeeded trial\n"


def test_a_bad_study_file_is_refused_naming_the_field(capas, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "base": tiny_job(),
                                "space": {"training.seed": {"grid": [1]}},
                                "objective": {"metric": "val_acc", "direction": "maximize"}}))
    refused = capas("study", "submit", str(path))
    assert refused.exit_code == 1
    assert "objective.metric" in refused.stderr and "val_acc" in refused.stderr


def test_the_python_client_drives_a_study(api, tmp_path):
    from fastapi.testclient import TestClient

    from capas.client import CapasAPIError, Client

    client = Client(url="http://testserver")
    client.http = TestClient(api.app, headers=client.http.headers)
    client.http.headers["Authorization"] = api.headers["Authorization"]
    study = client.submit_study(json.loads(open(study_file(tmp_path)).read()))
    assert [s["id"] for s in client.studies()] == [study["id"]]
    assert client.study(study["id"])["trials_started"] == 2
    assert client.study_trials_csv(study["id"]).startswith("number,job_id,status,value,")
    try:
        client.publish_best(study["id"], alias="production")
    except CapasAPIError as error:
        assert error.status == 409
    else:
        raise AssertionError("published a study with no succeeded trial")
    assert client.cancel_study(study["id"])["status"] == "cancelled"
    kinds = [kind for _, kind, _ in client.study_events(study["id"])]
    assert kinds.count("status") == 4 and kinds[-1] == "end"  # queued, cancelled ×2
    assert client.wait_study(study["id"])["status"] == "cancelled"
