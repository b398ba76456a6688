"""Tenancy: a model name is one owner's from the first accepted job, an app key only predicts,
a revocation holds from the next request, and admin access cannot be locked out."""

import asyncio
import json
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.serving.auth import authenticate as _authenticate
from capas.cli import app as cli
from core.db import session_scope
from core.models import ApiKey, Job, RegisteredModel
from core.services.auth import AuthService, Principal, hash_key
from core.services.jobs import JobService
from core.services.training import TrainingService
from core.settings import Settings
from tests.conftest import tiny_job
from tests.unit.test_registry import IRIS, error_of, train_version


def as_key(api: TestClient, key: str) -> TestClient:
    return TestClient(api.app, headers={"Authorization": f"Bearer {key}"})


def member(api: TestClient, name: str) -> TestClient:
    created = api.post("/users", json={"name": name, "role": "member"})
    assert created.status_code == 201, created.text
    return as_key(api, created.json()["api_key"])


def test_a_new_model_name_is_reserved_by_the_first_accepted_job(api):
    ada, bo = member(api, "ada"), member(api, "bo")
    assert ada.post("/jobs", json=tiny_job(name="shared")).status_code == 202
    for other in (bo, api):  # another member, and an admin too: no one publishes into it
        error = error_of(other.post("/jobs", json=tiny_job(name="shared")), 409, "conflict")
        assert error["details"] == [{"field": "model.name", "value": "shared"}]
        assert "belongs to another user" in error["message"]
    assert ada.post("/jobs", json=tiny_job(name="shared")).status_code == 202
    assert len(api.get("/jobs").json()["items"]) == 2
    reserved = ada.get("/models/shared").json()
    assert reserved["owner_id"] == ada.get("/me").json()["id"] and reserved["versions"] == []
    assert bo.get("/models/shared").status_code == 403


def test_a_refused_submission_reserves_nothing(api):
    ada, bo = member(api, "ada"), member(api, "bo")
    too_long = ada.post("/jobs", json={**tiny_job(name="kept-free"), "max_runtime_s": 10**7})
    assert too_long.status_code == 422
    assert bo.post("/jobs", json=tiny_job(name="kept-free")).status_code == 202


def _race(settings: Settings, principals: list[Principal], name: str) -> list[str]:
    """Every principal submits a job for `name` at once; returns who got an answer of each."""
    start = threading.Barrier(len(principals))
    outcomes: list[str] = [""] * len(principals)

    def submit(index: int) -> None:
        start.wait()
        try:
            with session_scope(settings) as session:
                JobService(session, settings).submit(principals[index], tiny_job(name=name))
            outcomes[index] = "accepted"
        except Exception as error:  # noqa: BLE001 - the outcome is what the test reads
            outcomes[index] = type(error).__name__

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(principals))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def assert_one_owner_wins(settings: Settings, names: list[str]) -> None:
    with session_scope(settings) as session:
        auth = AuthService(session)
        users = [auth.create_user(name, "member")[0] for name in names]
        principals = [Principal(u.id, u.name, u.role) for u in users]
    model = f"raced-{names[0]}"
    outcomes = _race(settings, principals, model)
    assert sorted(outcomes) == ["Conflict"] * (len(names) - 1) + ["accepted"], outcomes
    winner = principals[outcomes.index("accepted")].id
    with session_scope(settings) as session:
        assert session.scalar(select(RegisteredModel.owner_id)
                              .where(RegisteredModel.name == model)) == winner
        owners = session.scalars(select(Job.owner_id).where(Job.model_name == model)).all()
        assert owners == [winner]


def test_concurrent_submits_for_one_new_name_leave_one_owner_on_sqlite(embedded_settings):
    assert_one_owner_wins(embedded_settings, ["s1", "s2", "s3", "s4"])


def test_a_job_never_publishes_into_another_members_model(api):
    """A job queued before names were reserved, for a name another member has since taken,
    fails with the reason instead of adding a version to that model."""
    ada, bo = member(api, "ada"), member(api, "bo")
    train_version(api.settings, ada, "pytorch", "taken")
    accepted = bo.post("/jobs", json=tiny_job(name="own-name")).json()
    with session_scope(api.settings) as session:
        job = session.get(Job, accepted["id"])
        job.model_name = "taken"
        job.spec = {**job.spec, "model": {**job.spec["model"], "name": "taken"}}
    TrainingService(api.settings).run(accepted["id"], "unit-worker")
    failed = bo.get(f"/jobs/{accepted['id']}").json()
    assert failed["status"] == "failed" and failed["model_version"] is None
    assert "'taken' belongs to another user" in failed["failure_reason"]
    assert [v["version"] for v in ada.get("/models/taken").json()["versions"]] == [1]


def test_an_app_key_predicts_and_reads_me_and_nothing_else(api):
    train_version(api.settings, api, "pytorch", "iris")
    app = as_key(api, api.post("/users", json={"name": "kiosk", "role": "app",
                                               "models": ["iris"]}).json()["api_key"])
    instances = {"instances": IRIS.x[:2].tolist()}
    infer = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                         "data": IRIS.x[:2].ravel().tolist()}]}
    allowed = [("POST", "/models/iris/predict", instances),
               ("POST", "/predict", {"model": "iris", **instances}),
               ("GET", "/me", None), ("GET", "/v2", None), ("GET", "/v2/models/iris", None),
               ("GET", "/v2/models/iris/versions/1", None),
               ("GET", "/v2/models/iris/ready", None),
               ("POST", "/v2/models/iris/infer", infer)]
    for method, path, body in allowed:
        response = app.request(method, path, json=body)
        assert response.status_code == 200, (method, path, response.text)
    refused = [("GET", "/models", None), ("GET", "/models/iris", None),
               ("GET", "/models/iris/versions/1", None),
               ("GET", "/models/iris/versions/1/artifacts/onnx", None),
               ("GET", "/models/iris/versions/1/artifacts/safetensors", None),
               ("GET", "/models/iris/aliases/production", None),
               ("GET", "/keys", None), ("POST", "/keys", {}), ("GET", "/metrics", None),
               ("GET", "/catalog", None), ("GET", "/jobs", None), ("GET", "/datasets", None)]
    for method, path, body in refused:
        response = app.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert "an app key can only predict" in response.json()["error"]["message"]
    assert len(api.get("/keys", params={"user_id": app.get("/me").json()["id"]}).json()) == 1


def test_a_revoked_key_is_refused_even_if_a_request_loads_it_while_revoking(api):
    """Another request of this process that looks the key up between the revocation and its
    commit must not keep it alive in the lookup cache."""
    ada = member(api, "ada")
    spare = ada.post("/keys", json={}).json()
    cache = api.app.state.principals

    async def lookup() -> Principal:
        return await cache.get_or_load(hash_key(spare["api_key"]), _load)

    async def _load() -> Principal:
        return _authenticate(api.settings, spare["api_key"])

    def look_up_while_revoking(session: Session) -> None:
        if any(isinstance(row, ApiKey) and row.revoked_at for row in session.dirty):
            assert asyncio.run(lookup()).name == "ada"  # not committed yet: still valid

    event.listen(Session, "before_commit", look_up_while_revoking)
    try:
        assert ada.delete(f"/keys/{spare['id']}").status_code == 204
    finally:
        event.remove(Session, "before_commit", look_up_while_revoking)
    error = error_of(as_key(api, spare["api_key"]).get("/me"), 401, "unauthorized")
    assert error["message"] == "invalid or revoked API key"


def test_the_last_admin_key_cannot_be_revoked(api):
    own = api.get("/keys").json()
    error = error_of(api.delete(f"/keys/{own[0]['id']}"), 409, "conflict")
    assert error["details"] == [{"field": "key_id", "value": own[0]["id"]}]
    assert "capas admin reset-key" in error["message"]
    assert api.get("/me").status_code == 200
    second = api.post("/keys", json={}).json()
    assert api.delete(f"/keys/{own[0]['id']}").status_code == 204  # another one is left
    spare = as_key(api, second["api_key"])
    error_of(spare.delete(f"/keys/{second['id']}"), 409, "conflict")
    ada = member(spare, "ada")  # a member's own last key is theirs to revoke
    assert ada.delete(f"/keys/{ada.get('/keys').json()[0]['id']}").status_code == 204


@pytest.fixture
def server_env(embedded_settings, monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("CAPAS_DATA_DIR", str(embedded_settings.data_dir))
    get_settings.cache_clear()
    yield embedded_settings
    get_settings.cache_clear()


def test_capas_admin_reset_key_gives_a_lost_admin_a_new_key(server_env):
    with session_scope(server_env) as session:
        AuthService(session).bootstrap_admin(server_env)
        session.execute(ApiKey.__table__.update().values(revoked_at=ApiKey.created_at))
    result = CliRunner().invoke(cli, ["admin", "reset-key"])
    assert result.exit_code == 0, result.output
    key = json.loads(server_env.credentials_file.read_text())["api_key"]
    assert key in result.output
    from api.app import create_app

    client = TestClient(create_app(server_env), headers={"Authorization": f"Bearer {key}"})
    assert client.get("/me").json()["role"] == "admin"
    unknown = CliRunner().invoke(cli, ["admin", "reset-key", "--user", "nobody"])
    assert unknown.exit_code == 1 and "no admin named 'nobody'" in unknown.output
