"""A job's name and note: given at submit, shown by the API, its list and the CLI; refused in
the API's words when they are not text."""

import json

from tests.conftest import tiny_job


def test_name_and_note_are_kept_and_listed(api, capas):
    body = {**tiny_job(name="labelled"), "name": "lr 0.05", "note": "dropout 0.1, tanh"}
    submitted = api.post("/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert (job["name"], job["note"]) == ("lr 0.05", "dropout 0.1, tanh")
    assert "name" not in job["spec"] and "note" not in job["spec"]  # labels, not the spec
    unnamed = api.post("/jobs", json=tiny_job(name="labelled")).json()
    assert (unnamed["name"], unnamed["note"]) == (None, None)
    listed = {j["id"]: j for j in api.get("/jobs").json()["items"]}
    assert listed[job["id"]]["name"] == "lr 0.05" and listed[unnamed["id"]]["name"] is None

    result = capas("jobs")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if job["id"][:8] in line)
    assert "lr 0.05" in line


def test_the_cli_submits_a_name_and_a_note(api, capas, tmp_path):
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(tiny_job(name="from-cli")))
    result = capas("submit", str(spec), "--name", "first try", "--note", "as in the workshop")
    assert result.exit_code == 0, result.output
    job = api.get("/jobs").json()["items"][0]
    assert (job["name"], job["note"]) == ("first try", "as in the workshop")


def test_a_name_that_is_not_text_is_refused_naming_it(api):
    for bad in (42, ""):
        response = api.post("/jobs", json={**tiny_job(), "name": bad})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["details"][0]["field"] == "name" and error["details"][0]["value"] == bad
    assert api.get("/jobs").json()["items"] == []  # nothing was queued
