"""The workers `capas up` runs as child processes: their command line, their environment, and
a supervisor that restarts one that dies and stops it cleanly."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from capas.cli.console import err

if TYPE_CHECKING:
    from core.settings import Settings


def worker_command(queues: str, concurrency: int, name: str) -> list[str]:
    # CUDA cannot be used in a child forked from a parent that touched it: a CUDA worker is
    # one process (per GPU) running its jobs itself; CPU workers fork a child they recycle.
    pool = ["--pool", "solo"] if "cuda" in queues.split(",") else [
        "--pool", "prefork", "--concurrency", str(concurrency)]
    # `-P` and the `workers` entry point: nothing is imported from the working folder.
    return [sys.executable, "-P", "-m", "workers", "worker", "-Q", queues, *pool, "-n", name,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle"]


def embedded_concurrency(settings: "Settings") -> int:
    """How many jobs the embedded worker trains at once, unless `CAPAS_WORKER_CONCURRENCY`
    says: what the cores allow for small models, each job on `torch_threads` of them."""
    if "worker_concurrency" in settings.model_fields_set:
        return settings.worker_concurrency
    return max(1, (os.cpu_count() or 1) // settings.torch_threads)


def worker_env() -> dict[str, str]:
    """A worker's environment: this one, and where the project runs uninstalled from its own
    folder (found on the import path only as the working folder, which `-P` leaves off),
    that folder, named."""
    root = Path(__file__).resolve().parents[2]  # capas/cli/supervisor.py → the project
    if root != Path.cwd().resolve():
        return dict(os.environ)
    return {**os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}


def visible_gpus() -> int:
    """GPUs this host shows, asked of the driver so that no framework touches CUDA here."""
    if shutil.which("nvidia-smi") is None:
        return 0
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())


def _die_with_parent() -> None:
    """In the child: get SIGTERM (a warm shutdown) if `capas up` itself is killed."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class WorkerSupervisor:
    """Runs the embedded worker as a child process and restarts it if it dies.

    The worker has a session of its own: the terminal's Ctrl-C reaches `capas up` alone, which
    asks each worker to stop once. (Celery takes a second Ctrl-C as a cold shutdown that kills
    the running job.)
    """

    def __init__(self, command: list[str], env: dict[str, str] | None = None):
        self.command = command
        self.env = {**worker_env(), **(env or {})}
        self.process: subprocess.Popen | None = None
        self.asked: subprocess.Popen | None = None  # the process asked to stop
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.process = self._spawn()
        self.thread.start()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.command, env=self.env, preexec_fn=_die_with_parent,
                                start_new_session=True)

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            if self.process.poll() is not None:
                err.print(f"[yellow]worker exited ({self.process.returncode}); restarting[/]")
                self.process = self._spawn()

    def request_stop(self) -> None:
        """Ask for Celery's warm shutdown (its jobs go back to the queue); returns at once,
        so that a signal handler may call it."""
        self.stopping.set()
        process = self.process
        if process is not self.asked and process.poll() is None:
            self.asked = process
            process.send_signal(signal.SIGTERM)

    def stop(self, deadline: float) -> None:
        """Stop the worker and wait for it until `deadline` (monotonic), or a Ctrl-C; then
        kill it and its pool."""
        self.request_stop()
        self.thread.join()
        self.request_stop()  # a worker the watch restarted meanwhile too
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            err.print("[yellow]worker killed; its jobs resume from their last checkpoint at "
                      "the next start[/]")
