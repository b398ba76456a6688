"""Hosts that share nothing: the API and two workers, each in a network namespace and a data
dir of its own, reach PostgreSQL, Redis and the S3 server over the network, and nothing else.

A study and jobs run on the two worker hosts; one is killed mid-job (every process in its
namespace) and the other finishes the job from the checkpoint the first stored; the API then
serves, and hands out, models that only the object store holds, and answers 503 naming the
object store when it cannot reach it.
"""

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.artifacts import open_store
from core.artifacts.s3 import S3Store
from core.db import session_scope
from core.migrate import upgrade
from core.models import JobEvent, JobMetric, WorkerNode
from core.services.auth import AuthService
from core.settings import Settings
from ml.datasets import load_builtin
from tests.conftest import ROOT, free_port, postgres_database, require, tiny_job
from tests.datafiles import iris_csv
from tests.integration.conftest import cluster_env, wait_for, wait_for_job, worker_command
from tests.integration.test_job_guarantees import exactly_once, long_job
from tests.integration.test_studies import over, wait_for_study

API_PORT = 8000
WORKERS = ("host-a", "host-b")
# Bounds for a loaded machine, not measurements.
START_S = 180
JOB_S = 300


def _ip(*arguments: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, ["ip", *arguments],
                                            result.stdout, result.stderr)
    return result.stdout


@dataclass
class Host:
    """A network namespace with an address on the test's bridge, and the environment (a data
    dir of its own) of the processes it runs."""

    namespace: str
    address: str
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return Path(self.env["CAPAS_DATA_DIR"])

    def start(self, command: list[str], **env: str) -> subprocess.Popen:
        self.processes.append(subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *command], cwd=ROOT,
            env={**self.env, **env}, start_new_session=True))
        return self.processes[-1]

    def kill(self) -> None:
        """SIGKILL every process in the namespace, as when the machine goes away."""
        for pid in _ip("netns", "pids", self.namespace, check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        for process in self.processes:
            process.wait(30)


class Network:
    """A bridge here at the subnet's first address, and per host a namespace joined to it by a
    veth pair; `remove` takes away whatever of it was made."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.subnet = _unused_subnet()
        self.gateway = str(self.subnet.network_address + 1)
        self.bridge = f"capas{tag}"  # interface names are at most 15 characters
        self.hosts: dict[str, Host] = {}
        self._tag = tag

    def make(self, names: list[str]) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index, name in enumerate(names):
            host = Host(f"capas-{self._tag}-{name}", str(self.subnet.network_address + 2 + index))
            self.hosts[name] = host
            veth = f"cv{self._tag}{index}"
            _ip("netns", "add", host.namespace)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
                host.namespace)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/{self.subnet.prefixlen}",
                "dev", "eth0")
            _ip("-n", host.namespace, "link", "set", "eth0", "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")

    def remove(self) -> None:
        for host in self.hosts.values():
            host.kill()
            _ip("netns", "del", host.namespace, check=False)  # its veth pair goes with it
        _ip("link", "del", self.bridge, check=False)


def _unused_subnet() -> ipaddress.IPv4Network:
    """A private /24 that no interface or route of this machine is in."""
    taken = [ipaddress.ip_network(word, strict=False)
             for line in _ip("-4", "-o", "addr", "show").splitlines()
             for word in line.split() if "/" in word and word[0].isdigit()]
    taken += [ipaddress.ip_network(line.split()[0]) for line in _ip("-4", "route").splitlines()
              if line[0].isdigit()]
    while True:
        second, third = random.randint(200, 254), random.randint(0, 255)
        subnet = ipaddress.ip_network(f"10.{second}.{third}.0/24")
        if not any(subnet.overlaps(other) for other in taken):
            return subnet


@contextmanager
def forwarding(address: str, targets: list[tuple[str, int]]) -> Iterator[list[int]]:
    """A port on `address` per (host, port) of `targets` that forwards to it, byte for byte.

    Why: PostgreSQL, Redis and the session's S3 server listen on 127.0.0.1 only, which no other
    namespace reaches, and the machine's PostgreSQL configuration (listen_addresses, pg_hba) is
    not the test's to change. Forwarded connections come from 127.0.0.1, as those services
    already accept, and the hosts reach them over their veth pairs only.
    """
    loop = asyncio.new_event_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def serve(target: tuple[str, int]):
        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        return asyncio.start_server(connected, address, 0)

    async def shutdown() -> None:
        for server in servers:
            server.close()
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=loop.run_forever, name="forwarding", daemon=True)
    thread.start()
    servers = [asyncio.run_coroutine_threadsafe(serve(target), loop).result(10)
               for target in targets]
    try:
        yield [server.sockets[0].getsockname()[1] for server in servers]
    finally:
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _through(url: str, address: str, port: int) -> str:
    """`url` with its host and port replaced (its user kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@" * bool(user) + f"{address}:{port}"))


@pytest.fixture
def network():
    require(os.geteuid() == 0 and shutil.which("ip") is not None,
            "network namespaces need root and iproute2's ip")
    network = Network()
    try:
        try:
            network.make(["api", *WORKERS])
        except subprocess.CalledProcessError as error:
            require(False, f"cannot make network namespaces here: {' '.join(error.cmd)}: "
                           f"{error.stderr.strip()}")
        yield network
    finally:
        network.remove()


@dataclass
class Cluster:
    settings: Settings  # this process's: the services on loopback
    key: str
    hosts: dict[str, Host]
    store: S3Store

    @property
    def url(self) -> str:
        return f"http://{self.hosts['api'].address}:{API_PORT}"


@pytest.fixture
def cluster(network, s3_server, postgres_url, redis_url, tmp_path) -> Iterator[Cluster]:
    """A database of its own, an admin key, and each host's environment: the services at
    forwarded ports on the bridge, and a data dir of its own."""
    with postgres_database() as database_url:
        settings = s3_server.settings(tmp_path / "test", database_url=database_url,
                                      broker_url=redis_url)
        upgrade(settings)
        with session_scope(settings) as session:
            _, key = AuthService(session).create_user("hosts-admin", "admin")
        urls = {"database_url": database_url, "broker_url": redis_url,
                "s3_endpoint_url": s3_server.endpoint}
        services = [(urlsplit(url).hostname or "", urlsplit(url).port or 0)
                    for url in urls.values()]
        with forwarding(network.gateway, services) as ports:
            remote = settings.model_copy(update={
                name: _through(url, network.gateway, port)
                for (name, url), port in zip(urls.items(), ports, strict=True)})
            for host in network.hosts.values():
                host.env = cluster_env(remote)  # each call: a fresh data dir
            store = open_store(settings)
            assert isinstance(store, S3Store)
            yield Cluster(settings, key, network.hosts, store)
            network.remove()  # before the forwarding and the database go


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = START_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s} s"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def stored_checkpoint_epoch(store: S3Store, job_id: str) -> int:
    """The epoch of the checkpoint the bucket holds for the job (0: none)."""
    listed = store.client.list_objects_v2(Bucket=store.bucket,
                                          Prefix=store.key(f"jobs/{job_id}/checkpoint/"))
    return max((int(store.client.head_object(Bucket=store.bucket, Key=found["Key"])
                    ["Metadata"]["epoch"]) for found in listed.get("Contents", [])), default=0)


def test_hosts_that_share_nothing_train_resume_and_serve(cluster, tmp_path):
    api_host = cluster.hosts["api"]
    # Nothing on a host's loopback: the services are reachable over the network only.
    database_port = urlsplit(cluster.settings.database_url).port
    probe = subprocess.run(
        ["ip", "netns", "exec", api_host.namespace, sys.executable, "-c",
         f"import socket; socket.create_connection(('127.0.0.1', {database_port}), 5)"],
        capture_output=True, text=True)
    assert probe.returncode != 0 and "ConnectionRefusedError" in probe.stderr

    api_host.start([sys.executable, "-m", "capas.cli", "api", "--host", api_host.address,
                    "--port", str(API_PORT)])
    for name in WORKERS:
        # A checkpoint after every epoch; only the framework the jobs use preloaded.
        cluster.hosts[name].start(worker_command(name), CAPAS_CHECKPOINT_MIN_INTERVAL_S="0",
                                  CAPAS_WORKER_PRELOAD='["pytorch"]')
    wait_until(lambda: answers(f"{cluster.url}/readyz"), "the API host is not ready")

    def announced() -> set[str]:
        with session_scope(cluster.settings) as session:
            return {name.split("@")[0] for name in session.scalars(select(WorkerNode.name))}

    wait_until(lambda: announced() == set(WORKERS), "the worker hosts did not start")

    client = httpx.Client(base_url=cluster.url, timeout=60,
                          headers={"Authorization": f"Bearer {cluster.key}"})
    uploaded = client.post("/datasets", files={"file": ("iris.csv", iris_csv())},
                           data={"target": "species"})
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = uploaded.json()["id"]

    # A study's trials run on the worker hosts, on the dataset that the API host stored.
    study = client.post("/studies", json={
        "name": "across hosts", "base": {**tiny_job(epochs=2, name="study-best"),
                                         "dataset": dataset_id},
        "space": {"training.optimizer.learning_rate": {"grid": [0.01, 0.05]}},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "max_concurrent": 2, "publish": "best"})
    assert study.status_code == 202, study.text
    finished = wait_for_study(client, study.json()["id"], over, JOB_S)
    assert finished["status"] == "finished", finished
    assert [trial["status"] for trial in finished["trials"]] == ["succeeded"] * 2
    assert {client.get(f"/jobs/{trial['job_id']}").json()["worker"].split("@")[0]
            for trial in finished["trials"]} <= set(WORKERS)
    assert finished["best"]["model_version"] == 1

    # Small batches: epochs long enough that the job is still running when its host dies.
    body = long_job("resumed-elsewhere", epochs=15)
    body["training"]["batch_size"] = 8
    resumed = client.post("/jobs", json=body).json()
    quick = client.post("/jobs", json={**tiny_job(epochs=3, name="iris-uploaded"),
                                       "dataset": dataset_id}).json()

    running = wait_for(client, resumed["id"], lambda job: job["status"] != "queued"
                       and stored_checkpoint_epoch(cluster.store, job["id"]) >= 2, JOB_S)
    assert running["status"] == "running", running
    doomed = running["worker"].split("@")[0]
    cluster.hosts[doomed].kill()
    checkpoint_epoch = stored_checkpoint_epoch(cluster.store, resumed["id"])
    survivor = next(name for name in WORKERS if name != doomed)

    done = wait_for_job(client, resumed["id"], JOB_S)
    assert done["status"] == "succeeded", done["failure_reason"]
    assert done["attempt"] == 2 and done["worker"].startswith(f"{survivor}@")
    exactly_once(cluster.settings, done)
    # The survivor trained only the epochs after the stored checkpoint: those up to it keep
    # the metrics the killed host recorded before the job was re-queued.
    with session_scope(cluster.settings) as session:
        requeued_at = session.scalar(select(JobEvent.at).where(
            JobEvent.job_id == done["id"], JobEvent.status == "queued",
            JobEvent.detail.contains("worker lost")))
        recorded = session.execute(select(JobMetric.epoch, JobMetric.recorded_at)
                                   .where(JobMetric.job_id == done["id"])).all()
    assert requeued_at is not None
    assert sorted(epoch for epoch, at in recorded if at < requeued_at) == \
        list(range(1, checkpoint_epoch + 1))
    # The other job ran on the surviving host, from the dataset the API host uploaded.
    quick_done = wait_for_job(client, quick["id"], JOB_S)
    assert quick_done["status"] == "succeeded", quick_done["failure_reason"]
    assert quick_done["worker"].startswith(f"{survivor}@")

    # The worker hosts go, and their disks with them: the models are in the bucket only.
    for name in WORKERS:
        cluster.hosts[name].kill()
        shutil.rmtree(cluster.hosts[name].data_dir)
    assert not list(api_host.data_dir.rglob("model.onnx"))
    digits = load_builtin("builtin:digits")
    predicted = client.post("/models/resumed-elsewhere/predict",
                            json={"instances": digits.x[:5].tolist()})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["version"] == 1 and len(predicted.json()["predictions"]) == 5
    downloaded = client.get("/models/iris-uploaded/versions/1/artifacts/onnx")
    assert downloaded.status_code == 200, downloaded.text
    card = client.get("/models/iris-uploaded/versions/1").json()
    assert hashlib.sha256(downloaded.content).hexdigest() == card["files"]["model.onnx"] \
        == downloaded.headers["X-Capas-Sha256"]
    best = client.post("/models/study-best/predict",
                       json={"instances": load_builtin("builtin:iris").x[:2].tolist()})
    assert best.status_code == 200, best.text
    assert len(list(api_host.data_dir.rglob("model.onnx"))) == 3  # now in the API's cache

    # An API host that cannot reach the object store answers 503 naming it, never a 500.
    closed = f"http://127.0.0.1:{free_port()}"
    cut_off = TestClient(create_app(cluster.settings.model_copy(update={
        "s3_endpoint_url": closed, "data_dir": tmp_path / "cut-off"})),
        headers={"Authorization": f"Bearer {cluster.key}"})
    for response in (cut_off.get("/models/iris-uploaded/versions/1/artifacts/onnx"),
                     cut_off.post("/models/resumed-elsewhere/predict",
                                  json={"instances": digits.x[:1].tolist()})):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
        assert closed in response.json()["error"]["message"]
