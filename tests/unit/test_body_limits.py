"""Body caps on both sides of the API: the serving component's own on the prediction routes,
Starlette's (FastAPI's `max_body_size`) on FastAPI's, with the upload route's larger one; every
refusal in the error shape of the route's protocol, naming the cap."""

from fastapi.testclient import TestClient

from api.app import create_app

MB = 1024 * 1024


def client_with(api, **settings) -> TestClient:
    changed = api.settings.model_copy(update=settings)
    return TestClient(create_app(changed), headers=dict(api.headers))


def test_a_prediction_declared_too_large_is_refused_before_its_key_is_read(api):
    client = client_with(api, max_body_mb=1)
    too_large = b" " * (MB + 1)
    response = client.post("/predict", content=too_large, headers={"Authorization": ""})
    assert response.status_code == 413
    assert response.json()["error"] == {"code": "payload_too_large", "details": [],
                                         "message": f"request body exceeds {MB} bytes"}
    response = client.post("/v2/models/iris/infer", content=too_large)
    assert response.status_code == 413  # the inference protocol's shape
    assert response.json() == {"error": f"request body exceeds {MB} bytes",
                               "code": "payload_too_large", "details": []}


def test_the_upload_route_has_its_own_cap_and_every_other_route_the_general_one(api):
    client = client_with(api, max_body_mb=1, max_upload_mb=4)
    csv = b"a,b,label\n" + b"1.5,2.5,x\n3.5,4.5,y\n" * 80_000  # 1.6 MB
    response = client.post("/datasets", files={"file": ("big.csv", csv)},
                           data={"target": "label"})
    assert response.status_code == 201, response.text
    for path in ("/jobs", "/specs/validate", "/datasets/builtin:iris"):
        method = "PATCH" if path.startswith("/datasets") else "POST"
        response = client.request(method, path, content=csv,
                                  headers={"Content-Type": "application/json"})
        assert response.status_code == 413, (path, response.text)
        assert response.json()["error"]["message"] == f"request body exceeds {MB} bytes"
    response = client.post("/datasets", files={"file": ("big.csv", csv * 3)},
                           data={"target": "label"})
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("request body exceeds")
