"""The schema tier's service: `capas up` (the e2e tiers' fixture) with a member and an admin of
its own, a model trained by the member and a dataset the member uploaded, so that the routes
that read them answer with more than 404."""

import time

import httpx
import pytest

from tests.conftest import tiny_job
from tests.datafiles import iris_csv
from tests.e2e.conftest import service  # noqa: F401 (a fixture, found by pytest here)


@pytest.fixture(scope="module")
def accounts(service):  # noqa: F811 (the fixture imported above)
    """The service with `member` and `admin`: each a key, its id and a client."""
    bootstrap = httpx.Client(base_url=service["url"], timeout=60,
                             headers={"Authorization": f"Bearer {service['key']}"})
    found = {"url": service["url"]}
    for role in ("member", "admin"):
        created = bootstrap.post("/users", json={"name": f"schema-{role}", "role": role})
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
        client = httpx.Client(base_url=service["url"], timeout=60,
                              headers={"Authorization": f"Bearer {key}"})
        found[role] = {"key": key, "key_id": client.get("/keys").json()[0]["id"],
                       "client": client}
    member = found["member"]["client"]
    job = member.post("/jobs", json=tiny_job(epochs=2, name="iris"))
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 300  # only bounds the wait
    while (status := member.get(f"/jobs/{job.json()['id']}").json()["status"]) in (
            "queued", "running"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert status == "succeeded"
    dataset = member.post("/datasets", files={"file": ("iris.csv", iris_csv(), "text/csv")},
                          data={"target": "species"})
    assert dataset.status_code == 201, dataset.text
    found.update(model="iris", job_id=job.json()["id"], dataset_id=dataset.json()["id"])
    return found
