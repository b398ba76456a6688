"""The artifact store on a real S3 server: names, parts, the bounded cache, and what is refused.

Each "host" is a store with a data dir of its own over the same bucket prefix: nothing but the
object store is shared between them.
"""

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.artifacts import StoreUnavailable, check_store, open_store
from core.artifacts.s3 import LruFiles, S3Store
from ml.artifacts import ArtifactIntegrityError
from ml.datasets import Dataset, load_canonical, save_canonical
from ml.training import Checkpoints
from tests.conftest import ROOT, free_port

JOB = "0b7c4a52-8f1e-4c5e-9a51-2d0f3c1e7a10"
KB = 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hosts(s3_server, tmp_path):
    """Two hosts' stores over one fresh prefix of the bucket."""
    first = s3_server.settings(tmp_path / "host-a")
    second = first.model_copy(update={"data_dir": tmp_path / "host-b"})
    return open_store(first), open_store(second)


def publish(store: S3Store, files: dict[str, bytes], job_id: str = JOB) -> tuple[str, dict]:
    """A model dir written and stored as a worker does; returns its name and its card."""
    directory = store.job_model_dir(job_id)
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    stored = store.store_model(job_id)
    return stored, {"files": {name: sha256(data) for name, data in files.items()}}


def keys(s3_server, store: S3Store) -> set[str]:
    listed = s3_server.client().list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return {found["Key"].removeprefix(store.prefix) for found in listed.get("Contents", [])}


def test_names_are_made_from_ids_and_the_same_in_the_bucket(hosts, s3_server):
    store, _ = hosts
    stored, _ = publish(store, {"model.onnx": b"onnx", "spec.json": b"{}"})
    assert stored == f"jobs/{JOB}/model"
    assert keys(s3_server, store) == {f"jobs/{JOB}/model/model.onnx",
                                      f"jobs/{JOB}/model/spec.json"}
    # What a worker wrote left its working dir for its cache.
    assert not store.job_model_dir(JOB).exists()
    assert (store.root / stored / "model.onnx").read_bytes() == b"onnx"
    for bad in ("../../etc", "jobs/../x", "/jobs/x/model", ".hidden"):
        with pytest.raises(ValueError, match="not an artifact name"):
            store.model_file(bad, {"files": {"model.onnx": ""}}, "model.onnx")


def test_another_host_downloads_a_model_file_checked_by_its_sha256(hosts):
    first, second = hosts
    stored, card = publish(first, {"model.onnx": b"weights and graph"})
    path = second.model_file(stored, card, "model.onnx")
    assert path.read_bytes() == b"weights and graph"
    assert path.is_relative_to(second.root) and not path.is_relative_to(first.root)


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(hosts, s3_server):
    first, second = hosts
    data = os.urandom(2 * S3Store.PART_BYTES + 123)
    stored, card = publish(first, {"model.onnx": data})
    head = s3_server.client().head_object(Bucket=first.bucket,
                                          Key=first.key(f"{stored}/model.onnx"))
    assert head["ETag"].strip('"').endswith("-3")  # S3's mark of a three-part upload
    assert second.model_file(stored, card, "model.onnx").read_bytes() == data


def test_an_object_whose_sha256_does_not_match_is_refused(hosts, s3_server):
    first, second = hosts
    stored, card = publish(first, {"model.onnx": b"the trained model"})
    s3_server.client().put_object(Bucket=first.bucket, Key=first.key(f"{stored}/model.onnx"),
                                  Body=b"something else")
    with pytest.raises(ArtifactIntegrityError, match="model.onnx does not match its sha256"):
        second.model_file(stored, card, "model.onnx")
    assert not (second.root / stored / "model.onnx").exists()  # nothing kept to serve later


def test_a_missing_object_is_refused_naming_it(hosts, s3_server):
    first, second = hosts
    stored, card = publish(first, {"model.onnx": b"the trained model"})
    s3_server.client().delete_object(Bucket=first.bucket, Key=first.key(f"{stored}/model.onnx"))
    with pytest.raises(ArtifactIntegrityError,
                       match="model.onnx is missing from the artifact store"):
        second.model_file(stored, card, "model.onnx")


def test_a_damaged_cached_copy_is_fetched_again(hosts):
    first, second = hosts
    stored, card = publish(first, {"model.onnx": b"the trained model"})
    path = second.model_file(stored, card, "model.onnx")
    path.write_bytes(b"flipped bits")
    assert second.model_file(stored, card, "model.onnx").read_bytes() == b"the trained model"


def test_the_cache_keeps_the_recently_used_files_within_its_bound(s3_server, tmp_path):
    writer = open_store(s3_server.settings(tmp_path / "writer"))
    files = {f"part{index}.bin": os.urandom(400 * KB) for index in range(3)}
    stored, card = publish(writer, files)
    reader = open_store(s3_server.settings(tmp_path / "reader", artifact_url=writer.url,
                                           artifact_cache_mb=1))
    ticks = itertools.count(1_000_000_000)
    reader.cache = LruFiles(reader.root, reader.cache.limit_bytes, clock=lambda: next(ticks))

    def cached() -> set[str]:
        return {path.name for path in (reader.root / stored).glob("*")}

    reader.model_file(stored, card, "part0.bin")
    reader.model_file(stored, card, "part1.bin")
    reader.model_file(stored, card, "part0.bin")  # used again: part1 is now the oldest
    reader.model_file(stored, card, "part2.bin")  # 1.2 MB > 1 MB: one file goes
    assert cached() == {"part0.bin", "part2.bin"}
    assert reader.model_file(stored, card, "part1.bin").read_bytes() == files["part1.bin"]
    assert cached() == {"part1.bin", "part2.bin"}


def test_a_checkpoint_written_on_one_host_resumes_on_another(hosts, s3_server):
    first, second = hosts
    written = Checkpoints(first.job_checkpoint_dir(JOB),
                          after_write=lambda epoch, state: first.save_checkpoint(JOB, epoch, state))
    written.write(3, "checkpoint.pt", lambda path: path.write_bytes(b"epoch 3 state"))
    written.write(4, "checkpoint.pt", lambda path: path.write_bytes(b"epoch 4 state"))
    # The second host holds an older checkpoint of the same job from an earlier attempt.
    stale = Checkpoints(second.job_checkpoint_dir(JOB))
    stale.write(1, "checkpoint.pt", lambda path: path.write_bytes(b"epoch 1 state"))

    second.restore_checkpoint(JOB, Checkpoints(second.job_checkpoint_dir(JOB)).write)
    resumed = Checkpoints(second.job_checkpoint_dir(JOB))
    assert resumed.epoch == 4
    assert resumed.path("checkpoint.pt").read_bytes() == b"epoch 4 state"

    second.drop_checkpoint(JOB)
    assert not second.job_checkpoint_dir(JOB).exists()
    assert not [key for key in keys(s3_server, first) if "/checkpoint/" in key]


def test_a_checkpoint_that_does_not_match_its_sha256_is_not_resumed(hosts, s3_server):
    first, second = hosts
    first.save_checkpoint(JOB, 2, _file(first.work / "state", b"epoch 2 state"))
    key = first.key(f"jobs/{JOB}/checkpoint/state")
    client = s3_server.client()
    metadata = client.head_object(Bucket=first.bucket, Key=key)["Metadata"]
    client.put_object(Bucket=first.bucket, Key=key, Body=b"garbage", Metadata=metadata)
    second.restore_checkpoint(JOB, Checkpoints(second.job_checkpoint_dir(JOB)).write)
    assert Checkpoints(second.job_checkpoint_dir(JOB)).epoch == 0  # starts over


def test_a_dataset_is_stored_once_and_loaded_on_another_host_by_its_content(hosts, s3_server,
                                                                              tmp_path):
    first, second = hosts
    dataset = Dataset(id="ds_x", x=np.arange(12, dtype=np.float32).reshape(6, 2),
                      y=np.array([0, 1] * 3), task="classification", kind="tabular",
                      class_names=["a", "b"])
    digest = dataset.schema["sha256"]
    writes = []
    for store in (first, second):  # the same content uploaded on two hosts: stored once
        store.store_dataset(digest, lambda path: (writes.append(path),
                                                  save_canonical(dataset, path)))
    assert len(writes) == 1
    assert keys(s3_server, first) == {f"datasets/{digest}.npz"}
    path = second.dataset_path(digest)
    assert path is not None
    loaded = load_canonical(path, dataset.schema)
    assert np.array_equal(loaded.x, dataset.x)

    first.delete_dataset(digest)
    assert keys(s3_server, first) == set()
    third = open_store(s3_server.settings(tmp_path / "host-c", artifact_url=first.url))
    assert third.dataset_path(digest) is None


def test_a_store_that_cannot_be_used_is_named_at_start(s3_server, tmp_path):
    check_store(s3_server.settings(tmp_path))  # the session's bucket: fine
    missing = s3_server.settings(tmp_path, artifact_url="s3://no-such-bucket/capas")
    with pytest.raises(StoreUnavailable, match="bucket 'no-such-bucket' does not exist"):
        check_store(missing)
    refused = s3_server.settings(tmp_path, aws_secret_access_key="wrong")
    with pytest.raises(StoreUnavailable, match="access denied"):
        check_store(refused)
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = s3_server.settings(tmp_path, s3_endpoint_url=closed)
    with pytest.raises(StoreUnavailable, match=f"cannot reach {closed}"):
        check_store(unreachable)
    assert not open_store(unreachable).reachable()


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path



@pytest.mark.parametrize(("command", "broken", "named"), [
    (["api", "--port", "1"], {"CAPAS_ARTIFACT_URL": "s3://no-such-bucket/capas"},
     "bucket 'no-such-bucket' does not exist"),
    (["worker"], {"CAPAS_S3_ENDPOINT_URL": "http://127.0.0.1:{port}"},
     "cannot reach http://127.0.0.1:{port}"),
    (["api", "--port", "1"], {"CAPAS_ARTIFACT_URL": "/srv/artifacts"},
     "artifact_url: expected s3://bucket/prefix"),
])
def test_a_server_refuses_to_start_naming_what_is_wrong_with_its_store(command, broken, named,
                                                                       s3_server, tmp_path):
    port = free_port()
    env = {**os.environ, "COLUMNS": "400", "CAPAS_DATA_DIR": str(tmp_path),
           "CAPAS_ARTIFACT_URL": f"s3://{s3_server.bucket}/capas",
           "CAPAS_S3_ENDPOINT_URL": s3_server.endpoint, "AWS_ACCESS_KEY_ID": s3_server.access_key,
           "AWS_SECRET_ACCESS_KEY": s3_server.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           **{name: value.format(port=port) for name, value in broken.items()}}
    result = subprocess.run([sys.executable, "-m", "capas.cli", *command], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert named.format(port=port) in result.stderr
