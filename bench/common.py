"""Shared bench helpers: an embedded Capas service in a subprocess, and timing utilities."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CAPAS = str(Path(sys.executable).parent / "capas")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"no API at {url}")


@contextmanager
def _admin_client(url: str, data_dir: str):
    key = json.loads(Path(f"{data_dir}/credentials.json").read_text())["api_key"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as client:
        yield client


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass
class RunningService:
    process: subprocess.Popen  # `capas up`: the API runs in this process, the worker below it
    client: httpx.Client


@contextmanager
def embedded_service() -> Iterator[httpx.Client]:
    """`capas up` in a fresh data dir; yields an httpx client signed in as the admin."""
    with running_service() as service:
        yield service.client


@contextmanager
def running_service() -> Iterator[RunningService]:
    """`capas up` in a fresh data dir, with its process and an admin's httpx client."""
    with tempfile.TemporaryDirectory(prefix="capas-bench-") as tmp:
        port = _free_port()
        env = {**os.environ, "CAPAS_DATA_DIR": f"{tmp}/data", "CAPAS_PORT": str(port)}
        process = subprocess.Popen([CAPAS, "up"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url)
            with _admin_client(url, f"{tmp}/data") as client:
                yield RunningService(process, client)
        finally:
            _stop(process, signal.SIGINT)


@contextmanager
def cluster_service(postgres_admin_url: str, redis_url: str, workers: int = 1,
                    worker_env: dict[str, str] | None = None):
    """`capas migrate`, `capas api` and `workers` workers (each one process, named apart) on a
    fresh PostgreSQL database; `worker_env` adds to the workers' environment."""
    from sqlalchemy import create_engine, text

    from capas.cli.supervisor import worker_command

    name = f"capas_bench_{os.getpid()}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    with tempfile.TemporaryDirectory(prefix="capas-bench-") as tmp:
        port = _free_port()
        env = {**os.environ, "CAPAS_DATA_DIR": f"{tmp}/data", "CAPAS_BROKER_URL": redis_url,
               "CAPAS_DATABASE_URL": postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"}
        quiet = {"cwd": ROOT, "env": env, "stdout": subprocess.DEVNULL,
                 "stderr": subprocess.DEVNULL}
        subprocess.run([CAPAS, "migrate"], check=True, **quiet)
        processes = [subprocess.Popen([CAPAS, "api", "--host", "127.0.0.1", "--port",
                                       str(port)], **quiet)]
        processes += [subprocess.Popen(worker_command("cpu", 1, f"bench{number}@%h"),
                                       **{**quiet, "env": {**env, "PYTHONPATH": str(ROOT),
                                                           **(worker_env or {})}})
                      for number in range(workers)]
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url)
            with _admin_client(url, f"{tmp}/data") as client:
                yield client
        finally:
            for process in processes:
                _stop(process)
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def run_job(client: httpx.Client, body: dict) -> dict:
    """Submit and poll until the job ends; returns the finished job."""
    response = client.post("/jobs", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"bench job {job_id} {job['status']}: {job['failure_reason']}")
            return job
        time.sleep(0.5)


def job_seconds(job: dict, until: str = "finished_at") -> float:
    """Submit → `until` (succeeded, or started running), from the server's own timestamps."""
    created = datetime.fromisoformat(job["created_at"])
    return (datetime.fromisoformat(job[until]) - created).total_seconds()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares `seconds = slope * epochs + intercept`."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / \
        sum((x - mean_x) ** 2 for x, _ in points)
    return slope, mean_y - slope * mean_x
