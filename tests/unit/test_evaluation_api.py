"""The evaluation report of a trained job through the API, the model card and `capas evaluation`.

Jobs are trained by the worker's own code (`TrainingService.run`) in this process; the report
is checked against one computed independently from the downloaded ONNX model.
"""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import confusion_matrix
from typer.testing import CliRunner

from api.app import create_app
from capas.cli import app as capas_command
from capas.cli import console
from capas.client import Client
from core.db import session_scope
from core.migrate import upgrade
from core.services.auth import AuthService
from core.services.training import TrainingService
from core.settings import Settings
from ml.datasets import load_builtin, split
from ml.serving import Predictor
from tests.conftest import tiny_job
from tests.datafiles import iris_csv

COLUMNS = 80


def member(admin: TestClient, name: str) -> TestClient:
    created = admin.post("/users", json={"name": name, "role": "member"})
    assert created.status_code == 201, created.text
    return TestClient(admin.app, headers={"Authorization": f"Bearer {created.json()['api_key']}"})


def trained(settings: Settings, client: TestClient, body: dict) -> dict:
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    TrainingService(settings).run(response.json()["id"], "unit-worker")
    job = client.get(f"/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["failure_reason"]
    return job


def moons_job() -> dict:
    return {"model": {"name": "moons", "input": {"shape": [2]},
                      "layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                                 {"type": "dense", "units": 1, "activation": "logistic"}],
                      "objective": "binary_crossentropy"},
            "training": {"optimizer": {"type": "adam", "learning_rate": 0.05}, "epochs": 3,
                         "batch_size": 32, "seed": 5},
            "dataset": "builtin:moons", "framework": "pytorch"}


def sine_job() -> dict:
    return {"model": {"name": "sine", "input": {"shape": [20, 1]},
                      "layers": [{"type": "flatten"}, {"type": "dense", "units": 8,
                                                       "activation": "tanh"},
                                 {"type": "dense", "units": 1, "activation": "linear"}],
                      "objective": "mse"},
            "training": {"optimizer": {"type": "adam", "learning_rate": 0.01}, "epochs": 2,
                         "batch_size": 32, "seed": 5},
            "dataset": "builtin:sine", "framework": "tensorflow"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Ada's iris (pytorch), moons (binary) and sine (regression) jobs; Bo, another member."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("evaluation") / "data")
    settings.ensure_dirs()
    upgrade(settings)
    with session_scope(settings) as session:
        key = AuthService(session).bootstrap_admin(settings)
    admin = TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})
    ada, bo = member(admin, "ada"), member(admin, "bo")
    jobs = {"iris": trained(settings, ada, tiny_job("pytorch", epochs=5, name="iris")),
            "moons": trained(settings, ada, moons_job()),
            "sine": trained(settings, ada, sine_job())}
    return {"ada": ada, "bo": bo, "jobs": jobs, "key": ada.headers["Authorization"]}


def test_the_report_matches_the_downloaded_onnx_model_on_the_test_split(lab, tmp_path):
    ada, job = lab["ada"], lab["jobs"]["iris"]
    response = ada.get(f"/jobs/{job['id']}/evaluation")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["task"] == "classification" and report["split"] == "test"
    assert report["classes"] == ["setosa", "versicolor", "virginica"]
    assert report["samples"] == job["split"]["test"] == 30
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum(axis=1).tolist() == [c["support"] for c in report["per_class"]]
    assert report["accuracy"] == pytest.approx(job["final_metrics"]["test_accuracy"])

    onnx_file = tmp_path / "iris.onnx"
    onnx_file.write_bytes(ada.get("/models/iris/versions/1/artifacts/onnx").content)
    iris = load_builtin("builtin:iris")
    test = split(iris, job["split"]["seed"], job["split"]["validation_split"]).test
    predicted = Predictor.load(onnx_file).predict(iris.x[test]).argmax(axis=1)
    assert matrix.tolist() == confusion_matrix(iris.y[test], predicted, labels=[0, 1, 2]).tolist()
    wrong = [int(i) for i, p in zip(test, predicted, strict=True) if iris.y[i] != p]
    assert [m["index"] for m in report["misclassified"]] == wrong
    for sample in report["misclassified"]:  # the raw features, to be listed
        assert sample["features"] == pytest.approx(iris.x[sample["index"]].tolist())

    card = ada.get("/models/iris/versions/1").json()
    assert card["evaluation"] == {"task": "classification", "samples": 30,
                                  "accuracy": report["accuracy"],
                                  "macro_f1": report["macro"]["f1"], "roc_auc": None,
                                  "file": "evaluation.json"}


def test_binary_and_regression_jobs_have_their_reports(lab):
    ada, jobs = lab["ada"], lab["jobs"]
    binary = ada.get(f"/jobs/{jobs['moons']['id']}/evaluation").json()
    assert binary["classes"] == ["0", "1"] and 0.0 <= binary["roc"]["auc"] <= 1.0
    assert len(binary["roc"]["fpr"]) == len(binary["roc"]["tpr"]) >= 2
    assert 0.0 <= binary["pr"]["auc"] <= 1.0
    regression = ada.get(f"/jobs/{jobs['sine']['id']}/evaluation").json()
    assert regression["task"] == "regression" and "accuracy" not in regression
    assert regression["samples"] == jobs["sine"]["split"]["test"]
    assert regression["mae"] == pytest.approx(jobs["sine"]["final_metrics"]["test_mae"],
                                              rel=1e-4)
    assert regression["rmse"] >= regression["mae"] and regression["r2"] <= 1.0
    assert len(regression["residuals"]) == regression["samples"]  # fewer than the cap


def test_no_report_for_a_job_that_has_not_succeeded_nor_for_another_member(lab):
    ada, bo = lab["ada"], lab["bo"]
    queued = ada.post("/jobs", json=tiny_job(name="iris")).json()
    response = ada.get(f"/jobs/{queued['id']}/evaluation")
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found" and "(queued)" in error["message"]
    assert error["details"] == [{"field": "job_id", "value": queued["id"]}]
    unknown = ada.get("/jobs/no-such-job/evaluation")
    assert unknown.status_code == 404 and unknown.json()["error"]["details"] == [
        {"field": "job_id", "value": "no-such-job"}]
    # Another member's job is refused as every route of that job refuses it.
    theirs = bo.get(f"/jobs/{lab['jobs']['iris']['id']}/evaluation")
    assert theirs.status_code == bo.get(f"/jobs/{lab['jobs']['iris']['id']}").status_code == 403
    assert "confusion_matrix" not in theirs.text


def run_capas(lab, monkeypatch, *args: str):
    def client(url: str | None = None, api_key: str | None = None) -> Client:
        connected = Client(url="http://testserver", api_key=api_key)
        connected.http = TestClient(lab["ada"].app, headers=connected.http.headers)
        return connected

    monkeypatch.setattr(console, "Client", client)
    return CliRunner().invoke(capas_command, list(args), env={
        "COLUMNS": str(COLUMNS), "CAPAS_API_KEY": lab["key"].removeprefix("Bearer ")})


def test_capas_evaluation_prints_the_matrix_and_the_classes_at_80_columns(lab, monkeypatch):
    job_id = lab["jobs"]["iris"]["id"]
    report = lab["ada"].get(f"/jobs/{job_id}/evaluation").json()
    result = run_capas(lab, monkeypatch, "evaluation", job_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= COLUMNS for line in lines), result.stdout
    assert lines[0] == f"{job_id}: classification, 30 test samples"
    header = lines.index("confusion matrix (rows: true class, columns: predicted)")
    assert lines[header + 1].split() == ["true", "setosa", "versicolor", "virginica"]
    for row, name in zip(report["confusion_matrix"], report["classes"], strict=True):
        assert next(line for line in lines[header:] if line.startswith(name)).split() == \
            [name, *map(str, row)]
    table = next(i for i, line in enumerate(lines) if line.split()[:2] == ["class", "precision"])
    setosa = report["per_class"][0]
    assert lines[table + 2].split() == ["setosa", f"{setosa['precision']:.3f}",
                                        f"{setosa['recall']:.3f}", f"{setosa['f1']:.3f}",
                                        str(setosa["support"])]
    assert f"misclassified: {report['misclassified_total']}" in result.stdout
    as_json = run_capas(lab, monkeypatch, "evaluation", job_id, "--json")
    assert json.loads(as_json.stdout) == report


def test_capas_evaluation_of_a_regression_and_of_a_job_without_one(lab, monkeypatch):
    result = run_capas(lab, monkeypatch, "evaluation", lab["jobs"]["sine"]["id"])
    assert result.exit_code == 0, result.output
    assert "MAE " in result.stdout and "RMSE " in result.stdout and "R² " in result.stdout
    assert "largest residuals" in result.stdout
    missing = run_capas(lab, monkeypatch, "evaluation", "no-such-job")
    assert missing.exit_code == 1
    assert "error 404 (not_found): job 'no-such-job' not found" in missing.stderr


def upload(client: TestClient, name: str, rows: list[str]) -> str:
    response = client.post("/datasets", files={"file": (name, "\n".join(rows) + "\n")},
                           data={"target": "species"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_version_evaluated_on_its_own_data_uses_the_test_split_through_onnx(lab):
    ada, job = lab["ada"], lab["jobs"]["iris"]
    response = ada.post("/models/iris/versions/1/evaluate", json={"dataset": "builtin:iris"})
    assert response.status_code == 200, response.text
    served = response.json()
    assert (served["split"], served["dataset"], served["model"], served["version"]) == (
        "test", "builtin:iris", "iris", 1)
    trained = ada.get(f"/jobs/{job['id']}/evaluation").json()
    assert served["confusion_matrix"] == trained["confusion_matrix"]
    assert served["per_class"] == trained["per_class"]  # from the same matrix
    assert [m["index"] for m in served["misclassified"]] == \
        [m["index"] for m in trained["misclassified"]]


def test_a_version_evaluated_on_an_upload_counts_every_sample(lab):
    ada = lab["ada"]
    csv = iris_csv().decode().splitlines()
    dataset = upload(ada, "two-species.csv", csv[:101])  # setosa and versicolor, 50 each
    report = ada.post("/models/iris/versions/1/evaluate", json={"dataset": dataset}).json()
    assert report["split"] == "all" and report["samples"] == 100
    assert [c["support"] for c in report["per_class"]] == [50, 50, 0]  # the model's classes
    iris = load_builtin("builtin:iris")
    assert all(m["features"] == pytest.approx(iris.x[m["index"]].tolist())
               for m in report["misclassified"])


def test_a_dataset_that_does_not_fit_is_refused_naming_the_mismatch(lab):
    ada = lab["ada"]
    error = ada.post("/models/iris/versions/1/evaluate", json={"dataset": "builtin:wine"})
    assert error.status_code == 422, error.text
    assert error.json()["error"]["message"] == (
        "dataset: 'builtin:wine' has 13 features per sample [13]; the model takes 4 [4]")
    assert error.json()["error"]["details"] == [
        {"field": "dataset", "value": "builtin:wine", "expected": 4, "received": 13}]
    csv = iris_csv().decode().splitlines()
    roses = upload(ada, "roses.csv", [csv[0], *(row.replace("setosa", "rose")
                                                 for row in csv[1:101])])
    error = ada.post("/models/iris/versions/1/evaluate", json={"dataset": roses}).json()["error"]
    assert error["code"] == "invalid" and "class labels the model does not know: ['rose']" \
        in error["message"]
    assert error["details"][0]["received"] == ["rose"]
    sine = ada.post("/models/iris/versions/1/evaluate", json={"dataset": "builtin:moons"})
    assert sine.status_code == 422 and "has 2 features" in sine.json()["error"]["message"]


def test_only_the_owner_evaluates_a_version(lab):
    refused = lab["bo"].post("/models/iris/versions/1/evaluate", json={"dataset": "builtin:iris"})
    assert refused.status_code == 403, refused.text
    assert "confusion_matrix" not in refused.text
    missing = lab["ada"].post("/models/iris/versions/7/evaluate",
                              json={"dataset": "builtin:iris"})
    assert missing.status_code == 404 and missing.json()["error"]["details"] == [
        {"field": "version", "value": 7}]


def test_capas_evaluate_prints_a_version_on_a_dataset(lab, monkeypatch):
    result = run_capas(lab, monkeypatch, "evaluate", "iris", "1", "--dataset", "builtin:iris")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == \
        "iris v1 on builtin:iris (test): classification, 30 test samples"
    assert all(len(line) <= COLUMNS for line in result.stdout.splitlines())
    refused = run_capas(lab, monkeypatch, "evaluate", "iris", "1", "--dataset", "builtin:wine")
    assert refused.exit_code == 1 and "has 13 features per sample" in refused.stderr
