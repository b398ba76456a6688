"""The cluster stack for real: PostgreSQL, Redis and a Celery worker in a subprocess.

Every test of the tier runs twice: with the artifacts in the data dir that the API and the
workers share ("local"), and in an S3 object store ("s3"), where each process is a host with
a data dir of its own and nothing shared but PostgreSQL, Redis and the bucket.
"""

import os
import subprocess
import sys
import tempfile
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.artifacts import open_store
from core.db import session_scope
from core.migrate import upgrade
from core.services.auth import AuthService
from core.settings import Settings
from tests.conftest import ROOT, free_port, postgres_database


@pytest.fixture(scope="session", params=["local", "s3"])
def cluster_settings(request, postgres_url, redis_url, tmp_path_factory) -> Settings:
    """The settings of this process, the API host of the tests that use `cluster_api`; each
    store's run has a database of its own (its users and model names)."""
    data_dir = tmp_path_factory.mktemp(f"cluster-{request.param}")
    with postgres_database() as database_url:
        if request.param == "s3":
            settings = request.getfixturevalue("s3_server").settings(
                data_dir, database_url=database_url, broker_url=redis_url)
        else:
            settings = Settings(data_dir=data_dir, database_url=database_url,
                                broker_url=redis_url)
        upgrade(settings)
        yield settings


def stored_dataset_files(settings: Settings) -> set[str]:
    """The names of the dataset files in the cluster's artifact store."""
    store = open_store(settings)
    if settings.artifact_bucket is None:
        folder = store.root / "datasets"
        return {path.name for path in folder.iterdir()} if folder.is_dir() else set()
    prefix = f"{store.prefix}datasets/"
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
    return {found["Key"].removeprefix(prefix) for found in listed.get("Contents", [])}


# Workers under test notice a lost worker or message within seconds, not minutes.
FAST_RECOVERY = {"CAPAS_HEARTBEAT_STALE_S": "3", "CAPAS_RECONCILE_INTERVAL_S": "0.5",
                 "CAPAS_RESEND_GRACE_S": "1"}


def cluster_env(settings: Settings) -> dict[str, str]:
    """The environment of one more process of the cluster; with an object store, a host of
    its own (a fresh data dir)."""
    env = {**os.environ, "CAPAS_DATA_DIR": str(settings.data_dir),
           "CAPAS_DATABASE_URL": settings.database_url, "CAPAS_BROKER_URL": settings.broker_url,
           **FAST_RECOVERY}
    env.pop("CAPAS_ARTIFACT_URL", None)
    if settings.artifact_url is not None:
        secret = settings.aws_secret_access_key
        env.update({name: value for name, value in {
            "CAPAS_DATA_DIR": tempfile.mkdtemp(prefix="host-", dir=settings.data_dir.parent),
            "CAPAS_ARTIFACT_URL": settings.artifact_url,
            "CAPAS_S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret.get_secret_value() if secret else None,
            "AWS_DEFAULT_REGION": settings.aws_default_region}.items()
            if value is not None})
    return env


def worker_command(name: str, queue: str = "cpu") -> list[str]:
    """A real Celery worker of one process, named `name@<host>`."""
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queue,
            "--concurrency", "1", "-n", f"{name}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle"]


def start_worker(settings: Settings, name: str, queue: str = "cpu") -> subprocess.Popen:
    """A real worker (its own process group, so a test can kill it with its pool child)."""
    return subprocess.Popen(worker_command(name, queue), cwd=ROOT, env=cluster_env(settings),
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


@pytest.fixture
def workers(cluster_settings):
    """Starts named workers on demand (`workers("name")`); stops them all at the end."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        started.append(start_worker(cluster_settings, name))
        return started[-1]

    yield start
    for process in started:
        stop(process)


@pytest.fixture(scope="module")
def worker(cluster_settings):
    process = start_worker(cluster_settings, "it")
    yield process
    stop(process)


@pytest.fixture(scope="session")
def cluster_api(cluster_settings) -> TestClient:
    with session_scope(cluster_settings) as session:
        _, key = AuthService(session).create_user(f"it-admin-{time.time_ns()}", "admin")
    client = TestClient(create_app(cluster_settings))
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def wait_for(client: TestClient, job_id: str, done, timeout_s: float = 180) -> dict:
    """Poll the job until `done(job)`; fail with the last state seen after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if done(job):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} not as expected after {timeout_s} s: {job}")


def wait_for_job(client: TestClient, job_id: str, timeout_s: float = 180) -> dict:
    return wait_for(client, job_id,
                    lambda job: job["status"] in ("succeeded", "failed", "cancelled"), timeout_s)


def start_api(settings: Settings, *options: str,
              **popen) -> tuple[subprocess.Popen, str]:
    """`capas api [options]` on a free port, once it answers: its process and `host:port`."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "capas.cli", "api", "--host", "127.0.0.1",
                                "--port", str(port), *options], cwd=ROOT,
                               env=cluster_env(settings), **popen)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the API process exited"
        try:
            if httpx.get(f"http://{address}/healthz", timeout=1).status_code == 200:
                return process, address
        except httpx.TransportError:
            time.sleep(0.2)
    stop(process)
    raise AssertionError(f"no API at {address}")


@pytest.fixture(scope="session")
def cluster_server(cluster_settings, cluster_api):
    """The cluster API as its own process (`capas api`), for clients that need a real socket.

    Yields its `host:port`; `cluster_api`'s key authenticates against it.
    """
    process, address = start_api(cluster_settings)
    yield address
    stop(process)
