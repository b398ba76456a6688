"""Public datasets and models: readable by every member, changed only by their owner."""

from fastapi.testclient import TestClient

from tests.conftest import tiny_job
from tests.unit.test_registry import IRIS, error_of, train_version

CSV = "a,b,label\n" + "".join(f"{i},{(i * 7) % 5},{'yes' if i % 2 else 'no'}\n"
                              for i in range(40))


def member(api: TestClient, name: str) -> TestClient:
    key = api.post("/users", json={"name": name, "role": "member"}).json()["api_key"]
    client = TestClient(api.app, headers={"Authorization": f"Bearer {key}"})
    client.settings = api.settings
    return client


def test_a_dataset_opened_by_its_owner_is_read_and_trained_on_by_every_member(api):
    ada, bo = member(api, "ada"), member(api, "bo")
    uploaded = ada.post("/datasets", files={"file": ("votes.csv", CSV.encode())},
                        data={"target": "label"})
    assert uploaded.status_code == 201 and uploaded.json()["public"] is False
    dataset = uploaded.json()["id"]
    job = {**tiny_job(name="bo-votes"), "dataset": dataset}
    job["model"] = {**job["model"], "input": {"shape": [2]}}
    job["model"]["layers"] = [{"type": "dense", "units": 2, "activation": "softmax"}]

    def uploads_seen_by(client: TestClient) -> list[str]:
        return [d["id"] for d in client.get("/datasets").json() if d["source"] == "upload"]

    assert uploads_seen_by(bo) == []
    error_of(bo.get(f"/datasets/{dataset}"), 403, "forbidden")
    assert error_of(bo.post("/jobs", json=job), 422, "invalid")["details"][0]["field"] == \
        "dataset"
    error_of(bo.patch(f"/datasets/{dataset}", json={"public": True}), 403, "forbidden")

    opened = ada.patch(f"/datasets/{dataset}", json={"public": True})
    assert opened.status_code == 200 and opened.json()["public"] is True
    assert uploads_seen_by(bo) == [dataset]
    assert bo.get(f"/datasets/{dataset}").json()["preview"]
    assert bo.post("/jobs", json=job).status_code == 202
    # Open to read, not to change.
    error_of(bo.patch(f"/datasets/{dataset}", json={"public": False}), 403, "forbidden")
    error_of(bo.delete(f"/datasets/{dataset}"), 403, "forbidden")

    assert ada.patch(f"/datasets/{dataset}", json={"public": False}).json()["public"] is False
    error_of(bo.get(f"/datasets/{dataset}"), 403, "forbidden")
    assert uploads_seen_by(bo) == []
    assert uploads_seen_by(api) == [dataset]  # an admin sees everything either way


def test_a_dataset_patch_is_checked_and_changes_nothing_when_refused(api):
    ada = member(api, "ada")
    dataset = ada.post("/datasets", files={"file": ("votes.csv", CSV.encode())},
                       data={"target": "label"}).json()["id"]
    error = error_of(ada.patch(f"/datasets/{dataset}", json={"public": "maybe"}), 422,
                     "invalid")
    assert error["details"][0]["field"] == "public" and error["details"][0]["value"] == "maybe"
    error = error_of(ada.patch(f"/datasets/{dataset}", json={"shared": True}), 422, "invalid")
    assert {d["field"] for d in error["details"]} == {"public", "shared"}
    error_of(ada.patch(f"/datasets/{dataset}", json={}), 422, "invalid")
    error_of(ada.patch("/datasets/builtin:iris", json={"public": False}), 403, "forbidden")
    error_of(ada.patch("/datasets/nope", json={"public": True}), 404, "not_found")
    assert ada.get(f"/datasets/{dataset}").json()["public"] is False
    assert all(d["public"] for d in ada.get("/datasets").json() if d["source"] == "builtin")


def test_a_model_opened_by_its_owner_is_served_to_every_member_and_changed_only_by_it(api):
    ada, bo = member(api, "ada"), member(api, "bo")
    train_version(api.settings, ada, "pytorch", "ada-iris")
    instances = {"instances": IRIS.x[:2].tolist()}
    assert bo.get("/models").json() == []
    error_of(bo.post("/models/ada-iris/predict", json=instances), 403, "forbidden")

    error_of(bo.patch("/models/ada-iris", json={"public": True}), 403, "forbidden")
    opened = ada.patch("/models/ada-iris", json={"public": True})
    assert opened.status_code == 200 and opened.json()["public"] is True
    assert [m["name"] for m in bo.get("/models").json()] == ["ada-iris"]
    assert bo.get("/models/ada-iris/versions/1").status_code == 200
    assert bo.get("/models/ada-iris/versions/1/artifacts/onnx").status_code == 200
    predicted = bo.post("/models/ada-iris/predict", json=instances)
    assert predicted.status_code == 200 and len(predicted.json()["predictions"]) == 2
    assert bo.post("/predict", json={"model": "ada-iris", **instances}).status_code == 200
    assert bo.get("/v2/models/ada-iris/ready").status_code == 200

    # Open to read and predict, not to change, and not to train versions into.
    error_of(bo.put("/models/ada-iris/aliases/production", json={"version": 1}), 403,
             "forbidden")
    error_of(bo.patch("/models/ada-iris", json={"batching": {"max_batch_size": 4}}), 403,
             "forbidden")
    error_of(bo.post("/jobs", json=tiny_job(name="ada-iris")), 409, "conflict")
    assert ada.get("/models/ada-iris").json()["batching"]["max_batch_size"] != 4

    closed = ada.patch("/models/ada-iris", json={"public": False})
    assert closed.json()["public"] is False
    error_of(bo.post("/models/ada-iris/predict", json=instances), 403, "forbidden")
    assert bo.get("/models").json() == []
    error = error_of(ada.patch("/models/ada-iris", json={"public": "yes"}), 422, "invalid")
    assert error["details"][0]["field"] == "public" and error["details"][0]["value"] == "yes"
    assert ada.get("/models/ada-iris").json()["public"] is False
