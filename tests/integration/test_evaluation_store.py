"""A job's evaluation report through either artifact store: trained by a real worker, read by
an API host that has cached nothing, refused (409) once its stored file is altered."""

import uuid

import pytest

from tests.conftest import tiny_job
from tests.integration.conftest import wait_for_job
from tests.integration.test_artifact_serving import another_api_host, replace_in_store

pytestmark = pytest.mark.integration


def test_the_report_is_read_from_the_store_and_checked_against_the_card(
        cluster_api, cluster_settings, worker, tmp_path):
    name = f"evaluated-{uuid.uuid4().hex[:8]}"
    job = cluster_api.post("/jobs", json=tiny_job(epochs=2, name=name)).json()
    assert wait_for_job(cluster_api, job["id"])["status"] == "succeeded"
    host = another_api_host(cluster_settings, cluster_api.headers, tmp_path)
    report = host.get(f"/jobs/{job['id']}/evaluation")
    assert report.status_code == 200, report.text
    assert sum(map(sum, report.json()["confusion_matrix"])) == report.json()["samples"] == 30
    card = host.get(f"/models/{name}/versions/1").json()
    assert card["evaluation"]["accuracy"] == report.json()["accuracy"]

    replace_in_store(cluster_settings, f"jobs/{job['id']}/model/evaluation.json", b"{}")
    altered = another_api_host(cluster_settings, cluster_api.headers, tmp_path)
    response = altered.get(f"/jobs/{job['id']}/evaluation")
    assert response.status_code == 409, response.text
    assert "evaluation.json does not match its sha256" in response.json()["error"]["message"]
