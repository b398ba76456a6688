"""`capas up` as a process: Ctrl-C with a job running hands the job back and stops within
seconds, the next start finishes it; nothing is imported from the folder it runs in; and
`--workers N` trains N jobs at once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from capas import Client
from core.db import session_scope
from core.repositories.jobs import JobRepository
from core.settings import Settings
from tests.conftest import ROOT, example, free_port, tiny_job

# The installed command; where the project runs uninstalled, the same by module, its folder
# named on the import path rather than found as the working folder.
_SCRIPT = Path(sys.executable).parent / "capas"
CAPAS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-P", "-m", "capas"]
UNINSTALLED = {} if _SCRIPT.exists() else {"PYTHONPATH": str(ROOT)}


def start_up(data_dir: Path, cwd: Path = ROOT,
             options: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Client]:
    """`capas up [options]` on a free port, once it answers: its process and a client with its
    key."""
    port = free_port()
    env = {**os.environ, "CAPAS_DATA_DIR": str(data_dir), "CAPAS_PORT": str(port),
           **UNINSTALLED}
    for name in ("CAPAS_DATABASE_URL", "CAPAS_BROKER_URL", "CAPAS_API_KEY", "CAPAS_URL"):
        env.pop(name, None)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "up.log").open("a")
    process = subprocess.Popen([*CAPAS, "up", *options], cwd=cwd, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (data_dir / "up.log").read_text()
        assert time.monotonic() < deadline, "capas up did not answer"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    key = json.loads((data_dir / "credentials.json").read_text())["api_key"]
    return process, Client(url, key)


def finished(client: Client, job_id: str, timeout_s: float) -> dict:
    """The job once it has ended; fails after `timeout_s` (a bound, not an expectation)."""
    deadline = time.monotonic() + timeout_s
    while (job := client.job(job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout_s} s"
        time.sleep(0.3)
    return job


def ctrl_c(process: subprocess.Popen) -> float:
    """Ctrl-C, as the terminal sends it; the seconds `capas up` took to exit (rc 0)."""
    asked = time.monotonic()
    process.send_signal(signal.SIGINT)
    # Generous: a stop takes seconds; a worker that trains on is killed at 30 s elsewhere.
    assert process.wait(20) == 0
    return time.monotonic() - asked


def test_ctrl_c_hands_the_running_job_back_and_the_next_start_finishes_it(tmp_path):
    data_dir = tmp_path / "data"
    process, client = start_up(data_dir)
    try:
        body = example("cnn-digits.json")
        body.update(framework="pytorch")
        body["training"]["epochs"] = 150
        job = client.submit(body)
        for _, kind, data in client.events(job["id"]):
            if kind == "epoch" and data["epoch"] >= 2:
                break
        print(f"capas up stopped {ctrl_c(process):.1f} s after Ctrl-C, with a job running")
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
    with session_scope(Settings(data_dir=data_dir, database_url=None,
                                broker_url=None)) as session:
        jobs = JobRepository(session)
        handed_back = jobs.get(job["id"])
        statuses = [event.status for event in jobs.events(job["id"], kind="status")]
    assert (handed_back.status, handed_back.attempt) == ("queued", 0)
    assert statuses == ["queued", "running", "queued"]  # handed back once, not taken again

    process, client = start_up(data_dir)
    try:
        done = finished(client, job["id"], timeout_s=300)
        assert done["status"] == "succeeded" and done["attempt"] == 1, done["failure_reason"]
        epochs = [row["epoch"] for row in client.metrics(job["id"])]
        assert epochs == list(range(1, 151))
        print(f"capas up stopped {ctrl_c(process):.1f} s after Ctrl-C, idle")
    finally:
        client.close()
        if process.poll() is None:
            process.kill()


def test_nothing_is_imported_from_the_working_folder(tmp_path):
    """A folder named like a library (`triton/`, which torch looks for) and a module that
    shadows one from the standard library, where `capas up` is started."""
    folder = tmp_path / "work"
    (folder / "triton").mkdir(parents=True)
    (folder / "triton" / "__init__.py").write_text('"""Not the compiler torch looks for."""\n')
    (folder / "json.py").write_text('raise ImportError("json.py of the working folder")\n')
    process, client = start_up(tmp_path / "data", cwd=folder)
    try:
        job = client.submit(tiny_job("pytorch", name="from-a-crowded-folder"))
        done = finished(client, job["id"], timeout_s=180)
        assert done["status"] == "succeeded", done["failure_reason"]
        ctrl_c(process)
    finally:
        client.close()
        if process.poll() is None:
            process.kill()


def test_workers_option_trains_that_many_jobs_at_once(tmp_path):
    process, client = start_up(tmp_path / "data", options=("--workers", "2"))
    try:
        # Long enough that both are still training when the second one starts.
        jobs = [client.submit(tiny_job("pytorch", epochs=1000, name=f"side-by-side-{n}"))
                for n in range(2)]
        deadline = time.monotonic() + 180  # a bound, not an expectation
        while [client.job(job["id"])["status"] for job in jobs] != ["running", "running"]:
            assert time.monotonic() < deadline, "the two jobs never ran at the same time"
            time.sleep(0.3)
        for job in jobs:
            client.cancel(job["id"])
        for job in jobs:
            assert finished(client, job["id"], timeout_s=120)["status"] == "cancelled"
        ctrl_c(process)
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
