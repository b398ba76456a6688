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
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            key = json.loads(Path(f"{tmp}/data/credentials.json").read_text())["api_key"]
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                              timeout=60) as client:
                yield RunningService(process, client)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)


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


def job_seconds(job: dict) -> float:
    """Submit → succeeded, from the server's own timestamps (no polling granularity)."""
    created = datetime.fromisoformat(job["created_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - created).total_seconds()


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares `seconds = slope * epochs + intercept`."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / \
        sum((x - mean_x) ** 2 for x, _ in points)
    return slope, mean_y - slope * mean_x
