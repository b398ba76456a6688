"""The training coach on real runs, and the publishing policy it drives: a flagged version is
registered but not served by default; the card, the job, the list and the CLI say why.

Jobs are trained by the worker's own code (`TrainingService.run`) in this process.
"""

import pytest

from core.services.training import TrainingService
from tests.conftest import example


def train(api, framework: str, learning_rate: float) -> dict:
    # The digits example, shortened: ten classes, where learning rate 1000 ends near 10 %.
    body = example("mlp-digits.json")
    body["model"]["name"], body["framework"] = "coached", framework
    body["training"].update(epochs=4, optimizer={"type": "adam",
                                                 "learning_rate": learning_rate})
    response = api.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    TrainingService(api.settings).run(response.json()["id"], "unit-worker")
    job = api.get(f"/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["failure_reason"]
    return job


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_a_run_with_learning_rate_1000_is_flagged_and_not_served_by_default(api, capas,
                                                                            framework):
    healthy = train(api, framework, 0.05)
    assert healthy["coach"] == []
    wild = train(api, framework, 1000.0)
    codes = [flag["code"] for flag in wild["coach"]]
    assert codes == ["diverged", "chance"], wild["coach"]
    for flag in wild["coach"]:
        assert flag["message"] and {"section": "training", "name": "learning_rate",
                                    "label": "learning rate"} in flag["links"]
    assert wild["model_version"] == 2  # registered all the same

    model = api.get("/models/coached").json()
    assert (model["latest_version"], model["default_version"]) == (2, 1)
    digit = [[0.0] * 64]
    predicted = api.post("/models/coached/predict", json={"instances": digit})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["version"] == 1
    asked = api.post("/models/coached/predict",
                     json={"instances": digit, "version": 2})
    assert asked.json()["version"] == 2  # still there for whoever asks for it

    card = api.get("/models/coached/versions/2").json()
    assert card["coach"] == wild["coach"] and card["served_by_default"] is False
    assert "flagged" in card["publishing"] and "version 1 is" in card["publishing"]
    assert api.get("/models/coached/versions/1").json()["served_by_default"] is True

    # Pointing `production` at the flagged version is the owner's explicit choice.
    assert api.put("/models/coached/aliases/production", json={"version": 2}).status_code == 200
    assert api.get("/models/coached").json()["default_version"] == 2

    listed = {job["id"]: job for job in api.get("/jobs").json()["items"]}
    assert listed[wild["id"]]["coach"] == wild["coach"] and listed[healthy["id"]]["coach"] == []

    result = capas("jobs")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if wild["id"][:8] in line)
    assert "chance" in line
    shown = capas("job", wild["id"])
    assert shown.exit_code == 0, shown.output
    assert "coach: Stayed at chance level" in shown.output
    assert "learning rate (capas catalog training)" in shown.output


def test_when_every_version_is_flagged_the_latest_serves_and_its_card_says_so(api):
    train(api, "pytorch", 1000.0)
    card = api.get("/models/coached/versions/1").json()
    assert card["coach"] and card["served_by_default"] is True
    assert "no other version is unflagged" in card["publishing"]
