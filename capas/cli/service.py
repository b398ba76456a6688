"""The commands that run the service, on its host: `up`, `api`, `worker`, `migrate` and
`admin reset-key`."""

import json
import os
import signal
import socket
import sys
import time
from typing import Annotated

import typer

from capas.cli.console import console, fail, say
from capas.cli.supervisor import (
    WorkerSupervisor,
    embedded_concurrency,
    visible_gpus,
    worker_command,
    worker_env,
)

app = typer.Typer()
admin_app = typer.Typer(help="On the server host, with its settings: recover admin access.",
                        no_args_is_help=True)

# A stop asked of `capas up` (Ctrl-C, SIGTERM): requests still running this long after it are
# cut (an event stream never ends by itself; its client resumes with Last-Event-ID) ...
REQUESTS_GRACE_S = 2.0
# ... and a worker still handing its jobs back this long after it is killed, so that `capas up`
# is gone within the 10 s that `docker compose stop` gives a container. Its jobs lose no
# attempt, and resume from their last checkpoint at the next start.
WORKER_STOP_S = 8.0


def _server(config, workers: list[WorkerSupervisor]):
    """uvicorn's server, which also asks the workers to stop the moment it is asked to, so
    that they hand their jobs back while the API finishes its requests."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            for worker in workers:
                worker.request_stop()
            super().handle_exit(sig, frame)

    return Server(config)


def _refuse_an_unusable_store() -> None:
    """A server does not start on settings it cannot use: an artifact URL that is not one, an
    object store that does not answer, a missing bucket. The error names it; exit 1."""
    from pydantic import ValidationError

    from core.artifacts import StoreUnavailable, check_store
    from core.settings import get_settings

    try:
        check_store(get_settings())
    except (StoreUnavailable, ValidationError) as error:
        fail(str(getattr(error, "message", error)))


def _listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound before anything is started or said: a port that another
    program holds is refused by name, and nothing claims to be up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {error.strerror}. Another program holds the "
             "port (a Capas already up?): stop it, or choose another port with --port or "
             "CAPAS_PORT")
    return sock


def _record_url(settings) -> None:
    """Keep the saved credentials' URL where this start serves, so that the `capas` command
    on this host follows a later `--port` or CAPAS_PORT."""
    from core.services.auth import save_credentials

    path = settings.credentials_file
    if path.is_file():
        save_credentials(settings, json.loads(path.read_text())["api_key"])


@app.command()
def up(host: Annotated[str | None, typer.Option(help="API host (else CAPAS_HOST)")] = None,
       port: Annotated[int | None, typer.Option(help="API port (else CAPAS_PORT)")] = None,
       workers: Annotated[int | None, typer.Option(
           min=1, help="jobs (a study's trials among them) trained at once "
                       "(else CAPAS_WORKER_CONCURRENCY, else one per CAPAS_TORCH_THREADS "
                       "cores)")] = None
       ) -> None:
    """Start the embedded service: migrations, API and one worker, in one process tree."""
    import uvicorn

    from core.settings import get_settings

    _refuse_an_unusable_store()

    settings = get_settings()
    if host:
        settings.host = os.environ["CAPAS_HOST"] = host
    if port:
        settings.port = port
        os.environ["CAPAS_PORT"] = str(port)
    sock = _listen(settings.host, settings.port)
    key = _migrate_and_bootstrap(settings)
    _record_url(settings)
    url = f"http://{settings.host}:{settings.port}"
    supervised = [WorkerSupervisor(worker_command("cpu", workers or embedded_concurrency(settings),
                                                  "capas-embedded@%h"))]
    supervised += [WorkerSupervisor(worker_command("cuda", 1, f"capas-cuda{gpu}@%h"),
                                    {"CUDA_VISIBLE_DEVICES": str(gpu)})
                   for gpu in range(visible_gpus())]
    for worker in supervised:
        worker.start()
    console.print(f"Capas is up: API on {url}, data in {settings.resolved_data_dir}. "
                  "Ctrl-C stops it.")
    # The key rides in the fragment, which browsers never send: the page reads it, keeps it in
    # its tab's session storage and removes it from the address bar.
    console.print(f"Dashboard: {url}/#key={key} (signs this browser in once)" if key else
                  f"Dashboard: {url}/ (sign in with the key in {settings.credentials_file})",
                  soft_wrap=True)
    server = _server(uvicorn.Config("api.app:create_app", factory=True, host=settings.host,
                                    port=settings.port, log_level="warning",
                                    timeout_graceful_shutdown=REQUESTS_GRACE_S), supervised)
    # uvicorn re-raises the signal after its own graceful shutdown; turn SIGTERM into an exit
    # that runs the `finally` below instead of the default handler's immediate death.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # the Ctrl-C uvicorn handled, raised again
    finally:
        deadline = time.monotonic() + WORKER_STOP_S
        for worker in supervised:
            worker.stop(deadline)
        console.print("Capas stopped.")


@app.command()
def api(host: Annotated[str | None, typer.Option(
            help="the address to listen on (else CAPAS_HOST, else 127.0.0.1; 0.0.0.0: every "
                 "interface)", show_default=False)] = None,
        port: Annotated[int | None, typer.Option(
            help="else CAPAS_PORT, else 8000", show_default=False)] = None,
        workers: int = 1,
        access_log: Annotated[bool, typer.Option(
            help="log every request; on a small model the log line costs about a quarter "
                 "of a prediction's time in the API")] = True) -> None:
    """Run the API server alone (cluster mode)."""
    import uvicorn

    from core.settings import get_settings

    _refuse_an_unusable_store()
    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    # uvicorn binds (in each of its processes) once the app is loaded; a port already held is
    # said first, in the words `capas up` uses.
    _listen(host, port).close()

    # With several workers uvicorn starts new interpreters: keep the working folder off
    # their import path too.
    os.environ["PYTHONSAFEPATH"] = "1"
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, timeout_graceful_shutdown=REQUESTS_GRACE_S)


@app.command()
def worker(queues: Annotated[str, typer.Option("-Q", "--queues")] = "cpu",
           concurrency: Annotated[int | None, typer.Option(
               help="jobs trained at once on a CPU queue (else CAPAS_WORKER_CONCURRENCY, "
                    "else 1)", show_default=False)] = None,
           gpu: Annotated[int | None, typer.Option(
               help="for -Q cuda: the GPU this worker owns (one worker per GPU)")] = None
           ) -> None:
    """Run a Celery worker (cluster mode): `-Q cpu`, or `-Q cuda --gpu N` per GPU.

    SIGTERM or Ctrl-C stops it within seconds: its running jobs stop within a batch and go
    back to the queue, where another worker resumes them from their last epoch checkpoint.
    """
    from core.settings import get_settings

    _refuse_an_unusable_store()
    concurrency = concurrency or get_settings().worker_concurrency
    name = "capas@%h"
    env = worker_env()
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        name = f"capas-cuda{gpu}@%h"
    os.execve(sys.executable, worker_command(queues, concurrency, name), env)


def _migrate_and_bootstrap(settings) -> str | None:
    """Apply migrations; on the very first start, create the admin key and print it once."""
    from core.db import session_scope
    from core.migrate import upgrade
    from core.services.auth import AuthService

    settings.ensure_dirs()
    upgrade(settings)
    with session_scope(settings) as session:
        key = AuthService(session).bootstrap_admin(settings)
    if key:
        console.print(f"[bold green]Admin API key (shown once):[/] {key}")
        console.print(f"Saved to {settings.credentials_file}; the capas command finds it there.")
    return key


@app.command()
def migrate() -> None:
    """Apply database migrations (cluster mode); the first run creates the admin key."""
    from core.settings import get_settings

    _migrate_and_bootstrap(get_settings())
    console.print("database is at the latest revision")


@admin_app.command("reset-key")
def admin_reset_key(user: Annotated[str | None, typer.Option(
        help="the admin's name (default: the first admin)")] = None) -> None:
    """Make a new key for an admin when every admin key is lost; talks to the database
    directly, so it runs where the server's settings (CAPAS_DATABASE_URL, CAPAS_DATA_DIR) are."""
    from core.db import session_scope
    from core.errors import CapasError
    from core.services.auth import AuthService
    from core.settings import get_settings

    settings = get_settings()
    try:
        with session_scope(settings) as session:
            admin, key = AuthService(session).reset_admin_key(settings, user)
    except CapasError as error:
        fail(error.message)
    say(f"new key for admin {admin.name} (shown once): {key}")
    say(f"saved to {settings.credentials_file}")
