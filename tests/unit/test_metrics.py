"""`GET /metrics`: Prometheus exposition for an admin; requests by route, jobs by status."""

from fastapi.testclient import TestClient

from tests.conftest import tiny_job


def test_metrics_count_requests_by_route_and_jobs_by_status(api):
    job = api.post("/jobs", json=tiny_job()).json()
    api.get(f"/jobs/{job['id']}")
    api.get("/jobs/nope")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'capas_http_requests_total{method="POST",route="/jobs",status="202"} 1.0' in text
    assert 'capas_http_requests_total{method="GET",route="/jobs/{job_id}",status="200"} 1.0' \
        in text
    assert 'capas_http_requests_total{method="GET",route="/jobs/{job_id}",status="404"} 1.0' \
        in text
    assert 'capas_jobs{status="queued"} 1.0' in text
    assert 'capas_jobs{status="running"} 0.0' in text
    assert 'capas_http_request_duration_seconds_bucket{le="0.25",method="POST",route="/jobs"}' \
        in text


def test_metrics_need_an_admin_key(api):
    member_key = api.post("/users", json={"name": "curious"}).json()["api_key"]
    member = TestClient(api.app, headers={"Authorization": f"Bearer {member_key}"})
    assert member.get("/metrics").status_code == 403
    assert TestClient(api.app).get("/metrics").status_code == 401
