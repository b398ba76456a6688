"""Users and keys: shown once, stored hashed, revoked at once; roles member, admin and app."""

from fastapi.testclient import TestClient

from core.db import session_scope
from core.models import ApiKey
from tests.unit.test_registry import IRIS, train_version


def as_key(api: TestClient, key: str) -> TestClient:
    return TestClient(api.app, headers={"Authorization": f"Bearer {key}"})


def test_an_admin_adds_a_member_whose_key_works_and_is_stored_hashed(api):
    created = api.post("/users", json={"name": "ada", "role": "member"})
    assert created.status_code == 201
    body = created.json()
    assert body["role"] == "member" and body["api_key"].startswith("capas_")
    member = as_key(api, body["api_key"])
    assert member.get("/me").json() == {"id": body["id"], "name": "ada", "role": "member",
                                        "models": None}
    with session_scope(api.settings) as session:
        assert all(body["api_key"] not in (k.key_hash, k.prefix)
                   for k in session.query(ApiKey))
    duplicate = api.post("/users", json={"name": "ada"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["details"] == [{"field": "name", "value": "ada"}]


def test_only_an_admin_adds_users(api):
    member = as_key(api, api.post("/users", json={"name": "bo"}).json()["api_key"])
    refused = member.post("/users", json={"name": "cy"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert member.get("/users").status_code == 403
    assert [u["name"] for u in api.get("/users").json()] == ["admin", "bo"]


def test_keys_are_made_listed_and_revoked_at_once(api):
    member = as_key(api, api.post("/users", json={"name": "di"}).json()["api_key"])
    second = member.post("/keys", json={})
    assert second.status_code == 201
    extra = as_key(api, second.json()["api_key"])
    assert extra.get("/me").json()["name"] == "di"
    listed = member.get("/keys").json()
    assert len(listed) == 2 and all("api_key" not in k for k in listed)
    assert member.delete(f"/keys/{second.json()['id']}").status_code == 204
    revoked = extra.get("/me")
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "unauthorized"
    assert member.get("/me").status_code == 200  # the first key still works
    other = api.post("/keys", json={}).json()
    assert member.delete(f"/keys/{other['id']}").status_code == 404  # not theirs


def test_an_app_key_predicts_with_its_models_only(api):
    train_version(api.settings, api, "pytorch", "iris")
    train_version(api.settings, api, "pytorch", "secret")
    refused = api.post("/users", json={"name": "kiosk", "role": "app"})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == [{"field": "models", "value": None}]
    app_key = api.post("/users", json={"name": "kiosk", "role": "app",
                                         "models": ["iris"]}).json()["api_key"]
    app = as_key(api, app_key)
    instances = {"instances": IRIS.x[:2].tolist()}
    assert app.post("/models/iris/predict", json=instances).status_code == 200
    assert app.post("/predict", json={"model": "iris", **instances}).status_code == 200
    forbidden = app.post("/models/secret/predict", json=instances)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["details"] == [{"field": "model", "value": "secret"}]
    for method, path in (("GET", "/jobs"), ("GET", "/datasets"), ("GET", "/catalog"),
                         ("PUT", "/models/iris/aliases/production")):
        response = app.request(method, path, json={"version": 1})
        assert response.status_code == 403, (method, path)
        assert "an app key can only predict" in response.json()["error"]["message"]
