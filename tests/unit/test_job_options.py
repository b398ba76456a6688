"""Job options (`submission_id`, `max_runtime_s`, `max_attempts`): one model for `POST /jobs`,
`POST /specs/validate` and the Python client, which all take and refuse the same bodies."""

import pytest

from capas.client import CapasAPIError, Client
from tests.conftest import tiny_job
from tests.unit.test_registry import error_of

OPTIONS = {"submission_id": "run-1", "max_runtime_s": 600, "max_attempts": 2}
REFUSED = [("max_attempts", 0), ("max_attempts", 11), ("max_attempts", "2"),
           ("max_runtime_s", True), ("max_runtime_s", 1.5), ("submission_id", "x" * 201),
           ("submission_id", 7)]


def test_validate_takes_every_body_that_jobs_takes(api):
    answer = api.post("/specs/validate", json={**tiny_job(), **OPTIONS})
    assert answer.status_code == 200 and answer.json()["valid"], answer.text
    job = api.post("/jobs", json={**tiny_job(), **OPTIONS})
    assert job.status_code == 202 and job.json()["max_attempts"] == 2


@pytest.mark.parametrize(("field", "value"), REFUSED)
def test_both_routes_refuse_a_bad_option_alike_naming_it(api, field, value):
    answers = [error_of(api.post(route, json={**tiny_job(), field: value}), 422, "invalid")
               for route in ("/specs/validate", "/jobs")]
    assert answers[0] == answers[1]
    [detail] = answers[0]["details"]
    assert detail["field"] == field
    assert detail["value"] == value or detail["value"].endswith("…")  # long echoes are cut
    assert answers[0]["message"].startswith(f"{field}: ")
    assert api.get("/jobs").json()["items"] == []


def test_the_client_sends_every_option_and_refuses_a_bad_one_before_sending(api):
    client = Client(url="http://testserver")
    client.http = api  # the app in this process, through the same httpx interface
    job = client.submit(tiny_job(), framework="tensorflow", **OPTIONS)
    assert (job["framework"], job["max_attempts"]) == ("tensorflow", 2)
    assert client.submit(tiny_job(), submission_id="run-1")["id"] == job["id"]
    with pytest.raises(CapasAPIError) as refused:
        client.submit(tiny_job(), max_attempts=0)
    assert refused.value.status == 422 and refused.value.details[0]["field"] == "max_attempts"
    assert len(client.jobs()) == 1
