"""Dataset uploads over HTTP against the real PostgreSQL: each format, each kind of bad file,
ownership, deletion, and a job trained on an uploaded CSV by the real worker."""

import time
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from core.artifacts import open_store
from core.db import session_scope
from core.models import Dataset, Job, JobStatus, Role
from core.repositories.jobs import JobRepository
from core.services.auth import AuthService
from tests.conftest import tiny_job
from tests.datafiles import (
    IRIS_COLUMNS,
    csv_bytes,
    iris_csv,
    multipart,
    npz_bytes,
    png,
    shapes_zip,
    zip_bytes,
)
from tests.integration.conftest import stored_dataset_files, wait_for_job


def upload(client: TestClient, filename: str, data: bytes, **fields: str):
    return client.post("/datasets", files={"file": (filename, data)}, data=fields)


def created(response) -> dict:
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/datasets/{response.json()['id']}"
    return response.json()


def stored_files(settings) -> set[str]:
    return stored_dataset_files(settings)


def row_count(settings) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(Dataset))


def member_client(settings, app) -> TestClient:
    with session_scope(settings) as session:
        _, key = AuthService(session).create_user(f"student-{time.time_ns()}", Role.member)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def test_a_csv_upload_is_described_stored_once_and_previewed(cluster_api, cluster_settings):
    dataset = created(upload(cluster_api, "iris.csv", iris_csv(), target="species",
                             description="Iris, exported by hand"))
    assert dataset["id"].startswith("ds_") and dataset["source"] == "upload"
    assert (dataset["name"], dataset["format"]) == ("iris.csv", "csv")
    assert dataset["task"] == "classification" and dataset["kind"] == "tabular"
    assert dataset["feature_shape"] == [4] and dataset["num_samples"] == 150
    assert dataset["feature_names"] == IRIS_COLUMNS[:4] and dataset["target_name"] == "species"
    assert dataset["class_names"] == ["setosa", "versicolor", "virginica"]
    assert dataset["class_counts"] == [50, 50, 50] and dataset["num_classes"] == 3
    assert dataset["description"] == "Iris, exported by hand" and dataset["preview"] is None

    described = cluster_api.get(f"/datasets/{dataset['id']}").json()
    assert described["preview"][0] == {"features": [5.1, 3.5, 1.4, 0.2], "target": "setosa"}
    assert len(described["preview"]) == 5
    assert dataset["id"] in [d["id"] for d in cluster_api.get("/datasets").json()]

    # One canonical file per content, read back without pickle; the same upload again is
    # the same dataset, and under another name a new dataset on the same file.
    path = open_store(cluster_settings).dataset_path(dataset["sha256"])
    with np.load(path, allow_pickle=False) as arrays:
        assert arrays["x"].shape == (150, 4) and arrays["x"].dtype == np.float32
        assert np.bincount(arrays["y"]).tolist() == [50, 50, 50]
    again = upload(cluster_api, "iris.csv", iris_csv(), target="species",
                   description="Iris, exported by hand")
    assert again.status_code == 200 and again.json()["id"] == dataset["id"]
    renamed = created(upload(cluster_api, "iris.csv", iris_csv(), target="species",
                             name="iris again", description="Iris, exported by hand"))
    assert renamed["id"] != dataset["id"] and renamed["sha256"] == dataset["sha256"]
    assert f"{dataset['sha256']}.npz" in stored_files(cluster_settings)
    assert len([n for n in stored_files(cluster_settings) if n.startswith(dataset["sha256"])]) == 1


@pytest.mark.parametrize(("rows", "fields", "task", "classes"), [
    (["a,b,y", "1,2,0.5", "3,4,1.25", "5,6,2"], {}, "regression", None),
    (["a,b,y", "1,2,1", "3,4,0", "5,6,1"], {}, "classification", ["0", "1"]),
    (["a,b,y", "1,2,1", "3,4,0", "5,6,1"], {"task": "regression"}, "regression", None),
])
def test_the_task_is_inferred_from_the_target_and_can_be_overridden(cluster_api, rows, fields,
                                                                    task, classes):
    dataset = created(upload(cluster_api, "small.csv", csv_bytes(rows), target="y", **fields))
    assert dataset["task"] == task and dataset["class_names"] == classes
    assert dataset["target_shape"] == ([1] if task == "regression" else None)


def test_npz_uploads_keep_their_feature_shape(cluster_api):
    rng = np.random.default_rng(0)
    images = created(upload(cluster_api, "images.npz", npz_bytes(
        x=rng.random((20, 4, 4, 1)), y=np.arange(20) % 2)))
    assert images["kind"] == "image" and images["feature_shape"] == [4, 4, 1]
    assert images["class_names"] == ["0", "1"] and images["class_counts"] == [10, 10]
    sequences = created(upload(cluster_api, "series.npz", npz_bytes(
        x=rng.random((20, 5, 2)).astype(np.float32), y=rng.random(20))))
    assert sequences["kind"] == "sequence" and sequences["task"] == "regression"
    assert sequences["feature_shape"] == [5, 2] and sequences["target_shape"] == [1]
    labelled = created(upload(cluster_api, "labels.npz", npz_bytes(
        x=rng.random((6, 3)), y=np.array(["cat", "dog", "cat", "dog", "cat", "dog"]))))
    assert labelled["class_names"] == ["cat", "dog"]


def test_a_zip_of_image_folders_is_decoded_to_one_size(cluster_api):
    inferred = created(upload(cluster_api, "shapes.zip", shapes_zip()))
    assert inferred["kind"] == "image" and inferred["feature_shape"] == [5, 6, 3]
    assert inferred["class_names"] == ["blue", "red"] and inferred["class_counts"] == [13, 12]
    chosen = created(upload(cluster_api, "shapes.zip", shapes_zip(), image_size="8x8",
                            channels="1"))
    assert chosen["feature_shape"] == [8, 8, 1] and chosen["sha256"] != inferred["sha256"]
    preview = cluster_api.get(f"/datasets/{chosen['id']}").json()["preview"]
    assert preview[0]["target"] == "blue" and np.array(preview[0]["features"]).shape == (8, 8, 1)


IRIS_HEADER = "a,b,label"
BAD_FILES = {
    "nan": ("bad.csv", csv_bytes([IRIS_HEADER, "1,2,x", "3,nan,y"]), {"target": "label"},
            422, "row 3, column 'b'", {"row": 3, "column": "b", "value": "nan"}),
    "infinite": ("bad.csv", csv_bytes([IRIS_HEADER, "1,-inf,x", "3,4,y"]), {"target": "label"},
                 422, "row 2, column 'b'", {"row": 2, "column": "b", "value": "-inf"}),
    "ragged": ("bad.csv", csv_bytes([IRIS_HEADER, "1,2,x", "3,4,y", "5,y"]),
               {"target": "label"}, 422, "row 4 has 2 fields, the header has 3",
               {"row": 4, "value": 2}),
    "non-numeric": ("bad.csv", csv_bytes([IRIS_HEADER, "1,2,x", "red,4,y"]),
                    {"target": "label"}, 422, "column 'a' is not numeric: row 3 has 'red'",
                    {"row": 3, "column": "a", "value": "red"}),
    "missing target": ("bad.csv", csv_bytes([IRIS_HEADER, "1,2,x", "3,4,y"]),
                       {"target": "species"}, 422, "target column 'species' not found",
                       {"field": "target", "value": "species", "columns": ["a", "b", "label"]}),
    "one class": ("bad.csv", csv_bytes([IRIS_HEADER, "1,2,x", "3,4,x"]), {"target": "label"},
                  422, "one class only", {"field": "target", "classes": ["x"]}),
    "empty": ("bad.csv", b"", {"target": "label"}, 422, "the file is empty", {}),
    "header only": ("bad.csv", csv_bytes([IRIS_HEADER]), {"target": "label"}, 422,
                    "a header but no rows", {}),
    "binary as csv": ("photo.csv", png("red"), {"target": "label"}, 415,
                      "binary, not CSV", {}),
    "not utf-8": ("latin.csv", "a,b,label\n1,2,café\n".encode("latin-1"), {"target": "label"},
                  415, "not UTF-8", {}),
    "text as npz": ("arrays.npz", b"x,y\n1,2\n", {}, 415, "not a ZIP archive, so not NPZ", {}),
    "npz without y": ("arrays.npz", npz_bytes(x=np.zeros((3, 2))), {}, 422,
                      "needs arrays 'x' and 'y'; it has: x", {"arrays": ["x"]}),
    "npz of objects": ("arrays.npz", npz_bytes(x=np.array([[1], ["a"]], dtype=object),
                                               y=np.array([0, 1])), {}, 422,
                       "array 'x' holds Python objects", {"array": "x"}),
    "npz with nan": ("arrays.npz", npz_bytes(x=np.array([[1.0, 2.0], [3.0, np.nan]]),
                                             y=np.array([0, 1])), {}, 422,
                     "x[1, 1]: nan is not a finite number", {"array": "x", "row": 1, "column": 1}),
    "image that does not decode": ("pets.zip", zip_bytes({
        "cat/1.png": png("red"), "dog/1.png": b"this is not a png"}), {}, 422,
        "archive member 'dog/1.png' does not decode", {"member": "dog/1.png"}),
    "member outside its folder": ("pets.zip", zip_bytes({
        "cat/1.png": png("red"), "../dog/1.png": png("blue")}), {}, 422,
        "archive member '../dog/1.png' is outside its folder", {"member": "../dog/1.png"}),
    "absolute member": ("pets.zip", zip_bytes({
        "cat/1.png": png("red"), "/etc/dog.png": png("blue")}), {}, 422,
        "is outside its folder", {"member": "/etc/dog.png"}),
    "link member": ("pets.zip", zip_bytes({"cat/1.png": png("red"), "dog/1.png": png("blue")},
                                          links=("dog/2.png",)), {}, 422,
                    "archive member 'dog/2.png' is a link", {"member": "dog/2.png"}),
    "image outside a class folder": ("pets.zip", zip_bytes({
        "cat/1.png": png("red"), "dog.png": png("blue")}), {}, 422,
        "not directly inside a class folder", {"member": "dog.png"}),
    "unknown format": ("sheet.xlsx", b"PK\x03\x04 spreadsheet", {}, 415,
                       "cannot tell the format of 'sheet.xlsx'",
                       {"field": "format", "value": "sheet.xlsx"}),
    "unknown option": ("iris.csv", iris_csv(), {"target": "species", "colour": "red"}, 422,
                       "unknown field 'colour'", {"field": "colour"}),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_with_their_place_named_and_nothing_stored(case, cluster_api,
                                                                        cluster_settings):
    filename, data, fields, status, message, detail = BAD_FILES[case]
    rows, files = row_count(cluster_settings), stored_files(cluster_settings)
    response = upload(cluster_api, filename, data, **fields)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == {413: "payload_too_large", 415: "unsupported_media_type",
                             422: "invalid"}[status]
    assert message in error["message"]
    assert detail.items() <= error["details"][0].items()
    assert row_count(cluster_settings) == rows and stored_files(cluster_settings) == files
    assert list(cluster_settings.upload_temp_dir.iterdir()) == []


@pytest.fixture
def limited(cluster_settings, cluster_api) -> TestClient:
    """The same service with a 1 MB upload cap, a 1 MB archive cap and 3 form fields."""
    settings = cluster_settings.model_copy(update={"max_upload_mb": 1, "max_archive_mb": 1,
                                                   "max_multipart_fields": 3})
    return TestClient(create_app(settings), headers=dict(cluster_api.headers))


def test_the_upload_cap_holds_however_the_body_arrives(limited, cluster_settings):
    rows = row_count(cluster_settings)
    just_over = b"a,b,label\n" + b"1,2,x\n" * (1024 * 1024 // 6)
    # Declared length within the route's envelope: the file's own cap stops the stream.
    body, headers = multipart("big.csv", just_over, {"target": "label"})
    response = limited.post("/datasets", content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["details"][0] == {"field": "file", "value": "big.csv",
                                                      "limit_mb": 1}
    # Declared too large: refused before a byte is read.
    body, headers = multipart("big.csv", just_over * 2, {"target": "label"})
    response = limited.post("/datasets", content=body, headers=headers)
    assert response.status_code == 413 and "request body exceeds" in response.text
    # No length declared (chunked): counted as it arrives.
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    response = limited.post("/datasets", content=chunks, headers=headers)
    assert response.status_code == 413, response.text
    assert row_count(cluster_settings) == rows
    assert list(cluster_settings.upload_temp_dir.iterdir()) == []
    # Other routes keep the smaller general cap.
    assert limited.post("/jobs", content=b"x" * (33 * 1024 * 1024),
                        headers={"Content-Type": "application/json"}).status_code == 413


def test_an_archive_that_expands_past_its_cap_is_refused(limited, cluster_settings):
    bomb = zip_bytes({"cat/1.png": bytes(2 * 1024 * 1024), "dog/1.png": png("blue")})
    assert len(bomb) < 100_000
    response = upload(limited, "bomb.zip", bomb)
    assert response.status_code == 413, response.text
    assert "the archive expands to" in response.json()["error"]["message"]
    assert list(cluster_settings.upload_temp_dir.iterdir()) == []


def test_the_form_is_checked(limited):
    fields = {"target": "species", "name": "a", "description": "b", "task": "classification"}
    response = upload(limited, "iris.csv", iris_csv(), **fields)
    assert response.status_code == 422 and "more than 3 form fields" in response.text
    two_files = limited.post("/datasets", files=[("file", ("a.csv", b"a,b\n1,2\n")),
                                                 ("file", ("b.csv", b"a,b\n1,2\n"))])
    assert two_files.status_code == 422 and "more than 1 file" in two_files.text
    no_file = limited.post("/datasets", data={"target": "y"}, files={"other": ("", b"")})
    assert no_file.status_code == 422
    json_body = limited.post("/datasets", json={"file": "iris.csv"})
    assert json_body.status_code == 415
    assert json_body.json()["error"]["code"] == "unsupported_media_type"
    bad_task = upload(limited, "iris.csv", iris_csv(), target="species", task="clustering")
    assert bad_task.status_code == 422
    assert bad_task.json()["error"]["details"][0]["field"] == "task"


def test_members_see_their_own_datasets_and_admins_all(cluster_api, cluster_settings):
    app = cluster_api.app
    alice, bob = member_client(cluster_settings, app), member_client(cluster_settings, app)
    mine = created(upload(alice, "iris.csv", iris_csv(), target="species"))
    listed = [d["id"] for d in alice.get("/datasets").json()]
    assert mine["id"] in listed and "builtin:iris" in listed
    assert mine["id"] not in [d["id"] for d in bob.get("/datasets").json()]
    assert mine["id"] in [d["id"] for d in cluster_api.get("/datasets").json()]
    assert bob.get(f"/datasets/{mine['id']}").status_code == 403
    assert bob.delete(f"/datasets/{mine['id']}").status_code == 403
    body = {**tiny_job(name="bobs-model"), "dataset": mine["id"]}
    refused = bob.post("/jobs", json=body)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "dataset"
    assert cluster_api.get("/datasets/ds_nothing").status_code == 404


def test_a_dataset_in_use_is_not_deleted(cluster_api, cluster_settings):
    dataset = created(upload(cluster_api, "doomed.csv", csv_bytes(
        ["a,b,label", *[f"{i},{i % 3},{'xy'[i % 2]}" for i in range(30)]]), target="label"))
    # A job row waiting for a worker (no message is sent, so none takes it during the test).
    job_id = str(uuid.uuid4())
    with session_scope(cluster_settings) as session:
        JobRepository(session).add(Job(
            id=job_id, owner_id=cluster_api.get("/me").json()["id"], status=JobStatus.queued,
            model_name="doomed", framework="pytorch", requested_device="cpu", queue="cpu",
            dataset=dataset["id"], spec={}, max_runtime_s=60))
    for status in (JobStatus.queued, JobStatus.running):
        with session_scope(cluster_settings) as session:
            session.get(Job, job_id).status = status
        refused = cluster_api.delete(f"/datasets/{dataset['id']}")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["details"][0]["jobs"] == [job_id]
    with session_scope(cluster_settings) as session:
        session.get(Job, job_id).status = JobStatus.succeeded
    assert cluster_api.delete(f"/datasets/{dataset['id']}").status_code == 204
    assert cluster_api.get(f"/datasets/{dataset['id']}").status_code == 404
    assert f"{dataset['sha256']}.npz" not in stored_files(cluster_settings)


def test_a_job_on_an_uploaded_dataset_is_checked_and_trained(cluster_api, worker):
    dataset = created(upload(cluster_api, "iris.csv", iris_csv(), target="species",
                             name="iris for training"))
    body = {**tiny_job(epochs=4, name="uploaded-iris"), "dataset": dataset["id"]}
    wrong = {**body, "model": {**body["model"], "input": {"shape": [5]}}}
    error = cluster_api.post("/jobs", json=wrong).json()["error"]
    assert error["details"][0]["field"] == "model.input.shape"
    assert "[5]" in error["message"] and "[4]" in error["message"]

    response = cluster_api.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(cluster_api, response.json()["id"])
    assert job["status"] == "succeeded", job["failure_reason"]
    assert job["dataset"] == dataset["id"] and job["dataset_sha256"] == dataset["sha256"]
    assert job["split"] == {"seed": 3, "test_fraction": 0.2, "validation_split": 0.2,
                            "stratified": True, "train": 96, "validation": 24, "test": 30}
    out = cluster_api.post("/models/uploaded-iris/predict",
                           json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).json()
    assert out["classes"] == ["setosa", "versicolor", "virginica"]
