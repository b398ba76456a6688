"""The `capas` command: run the service (`up`, `api`, `worker`, `migrate`) and use it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from capas.client import CapasAPIError, Client

app = typer.Typer(help="Train and serve neural networks from a declarative layer spec.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Upload, list, show and delete datasets.",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
users_app = typer.Typer(help="Users (admins only) and API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
keys_app = typer.Typer(help="Your API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)


# A stop asked of `capas up` (Ctrl-C, SIGTERM): requests still running this long after it are
# cut (an event stream never ends by itself; its client resumes with Last-Event-ID) ...
REQUESTS_GRACE_S = 2.0
# ... and a worker still handing its jobs back this long after it is killed, so that `capas up`
# is gone within the 10 s that `docker compose stop` gives a container. Its jobs lose no
# attempt, and resume from their last checkpoint at the next start.
WORKER_STOP_S = 8.0


def _worker_command(queues: str, concurrency: int, name: str) -> list[str]:
    # CUDA cannot be used in a child forked from a parent that touched it: a CUDA worker is
    # one process (per GPU) running its jobs itself; CPU workers fork a child they recycle.
    pool = ["--pool", "solo"] if "cuda" in queues.split(",") else [
        "--pool", "prefork", "--concurrency", str(concurrency)]
    # `-P` and the `workers` entry point: nothing is imported from the working folder.
    return [sys.executable, "-P", "-m", "workers", "worker", "-Q", queues, *pool, "-n", name,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle"]


def _worker_env() -> dict[str, str]:
    """A worker's environment: this one, and where the project runs uninstalled from its own
    folder (found on the import path only as the working folder, which `-P` leaves off),
    that folder, named."""
    root = Path(__file__).resolve().parents[1]
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
        self.env = {**_worker_env(), **(env or {})}
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


@app.command()
def up(host: Annotated[str | None, typer.Option(help="API host")] = None,
       port: Annotated[int | None, typer.Option(help="API port")] = None) -> None:
    """Start the embedded service: migrations, API and one worker, in one process tree."""
    import uvicorn

    from core.settings import get_settings

    settings = get_settings()
    if host:
        settings.host = os.environ["CAPAS_HOST"] = host
    if port:
        settings.port = port
        os.environ["CAPAS_PORT"] = str(port)
    key = _migrate_and_bootstrap(settings)
    url = f"http://{settings.host}:{settings.port}"
    workers = [WorkerSupervisor(_worker_command("cpu", settings.worker_concurrency,
                                                "capas-embedded@%h"))]
    workers += [WorkerSupervisor(_worker_command("cuda", 1, f"capas-cuda{gpu}@%h"),
                                 {"CUDA_VISIBLE_DEVICES": str(gpu)})
                for gpu in range(visible_gpus())]
    for worker in workers:
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
                                    timeout_graceful_shutdown=REQUESTS_GRACE_S), workers)
    # uvicorn re-raises the signal after its own graceful shutdown; turn SIGTERM into an exit
    # that runs the `finally` below instead of the default handler's immediate death.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # the Ctrl-C uvicorn handled, raised again
    finally:
        deadline = time.monotonic() + WORKER_STOP_S
        for worker in workers:
            worker.stop(deadline)
        console.print("Capas stopped.")


@app.command()
def api(host: str = "0.0.0.0", port: int = 8000, workers: int = 1,
        access_log: Annotated[bool, typer.Option(
            help="log every request; on a small model the log line costs about a quarter "
                 "of a prediction's time in the API")] = True) -> None:
    """Run the API server alone (cluster mode)."""
    import uvicorn

    # With several workers uvicorn starts new interpreters: keep the working folder off
    # their import path too.
    os.environ["PYTHONSAFEPATH"] = "1"
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, timeout_graceful_shutdown=REQUESTS_GRACE_S)


@app.command()
def worker(queues: Annotated[str, typer.Option("-Q", "--queues")] = "cpu",
           concurrency: int = 1,
           gpu: Annotated[int | None, typer.Option(
               help="for -Q cuda: the GPU this worker owns (one worker per GPU)")] = None
           ) -> None:
    """Run a Celery worker (cluster mode): `-Q cpu`, or `-Q cuda --gpu N` per GPU.

    SIGTERM or Ctrl-C stops it within seconds: its running jobs stop within a batch and go
    back to the queue, where another worker resumes them from their last epoch checkpoint.
    """
    name = "capas@%h"
    env = _worker_env()
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        name = f"capas-cuda{gpu}@%h"
    os.execve(sys.executable, _worker_command(queues, concurrency, name), env)


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


def _fail(error: CapasAPIError) -> None:
    err.print(f"[red]error {error.status} ({error.code}):[/] {error.message}")
    for detail in error.details:
        err.print(f"  - {detail.get('field')}: {detail.get('message', '')} "
                  f"(received {json.dumps(detail.get('value'))})")
    raise typer.Exit(1)


@app.command()
def validate(spec_file: Path) -> None:
    """Check a job file: each layer's output shape and parameters, and every error at once."""
    body = json.loads(spec_file.read_text())
    with Client() as client:
        try:
            report = client.validate(body)
        except CapasAPIError as error:
            _fail(error)
    if report.get("layers"):
        table = Table("#", "layer", "output shape", "parameters", "multiply-adds a sample")
        types = [layer.get("type", "?") for layer in body.get("model", {}).get("layers", [])]
        for row in report["layers"]:
            table.add_row(str(row["index"]), types[row["index"]],
                          "×".join(map(str, row["output_shape"])), f"{row['params']:,}",
                          f"{row['multiply_adds']:,}")
        console.print(table)
        console.print(f"total parameters: {report['total_params']:,}; multiply-adds a sample: "
                      f"{report['total_multiply_adds']:,}")
    for error in report["errors"]:
        err.print(f"[red]{error['field']}[/]: {error['message']}")
    if not report["valid"]:
        raise typer.Exit(1)
    console.print("[green]valid[/]")


@app.command()
def catalog(kind: Annotated[str, typer.Argument(
        help="one of the catalog's lists: layers, activations, optimizers, training, … "
             "(an unknown one names them all)")] = "activations") -> None:
    """Show the vocabulary of the spec language, as `GET /catalog` serves it."""
    with Client() as client:
        try:
            entries = client.catalog()
        except CapasAPIError as error:
            _fail(error)
    kinds = [name for name, entry in entries.items() if isinstance(entry, list)]
    if kind not in kinds:
        err.print(f"[red]kind: unknown '{kind}'[/]; choose from {', '.join(kinds)}")
        raise typer.Exit(1)
    table = Table("name", "formula, parameters or default", "range or description")
    for entry in entries[kind]:
        table.add_row(entry.get("name") or entry.get("type"), _detail(entry),
                      entry.get("range") or entry.get("description", ""))
    console.print(table)


def _detail(entry: dict) -> str:
    """A function's formula, or what a layer, optimizer or block takes, or a parameter's default."""
    if "formula" in entry:
        return entry["formula"]
    if "parameters" in entry:
        return ", ".join(p["name"] + (f"={p['default']}" if "default" in p else "")
                         for p in entry["parameters"])
    return f"= {json.dumps(entry['default'])}" if "default" in entry else ""


@app.command()
def submit(spec_file: Path,
           framework: Annotated[str | None, typer.Option(
               help="tensorflow or pytorch; overrides the file's framework")] = None,
           watch: Annotated[bool, typer.Option(help="follow the job until it ends")] = False,
           submission_id: Annotated[str | None, typer.Option(
               help="idempotency key: resubmitting returns the same job")] = None) -> None:
    """Queue a training job from a JSON file."""
    body = json.loads(spec_file.read_text())
    with Client() as client:
        try:
            job = client.submit(body, framework=framework, submission_id=submission_id)
        except CapasAPIError as error:
            _fail(error)
        console.print(f"job [bold]{job['id']}[/] queued ({job['framework']}, "
                      f"model {job['model_name']})")
        if watch:
            _watch(client, job)


def _watch(client: Client, submitted: dict) -> None:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[stats]}"), TimeElapsedColumn())
    # The model's metrics of an epoch, without the bookkeeping columns.
    shown = [m["name"] for m in client.catalog()["metrics"] if not m["bookkeeping"]]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=submitted["epochs"], stats="")
        for _, kind, data in client.events(submitted["id"]):
            if kind == "epoch":
                stats = "  ".join(f"{k} {data[k]:.4f}" for k in shown if data.get(k) is not None)
                progress.update(task, completed=data["epoch"], stats=stats)
            elif kind == "status":
                progress.update(task, description=data["status"])
    job = client.job(submitted["id"])
    if job["status"] == "succeeded":
        test = {k: round(v, 4) for k, v in job["final_metrics"].items() if k.startswith("test_")}
        console.print(f"[green]succeeded[/]: model {job['model_name']} version "
                      f"{job['model_version']}; {test}")
    else:
        err.print(f"[red]{job['status']}[/]: {job['failure_reason']}")
        raise typer.Exit(1)


@app.command()
def jobs(status: str | None = None, limit: int = 20) -> None:
    """List recent jobs."""
    with Client() as client:
        try:
            items = client.jobs(status=status, limit=limit)
        except CapasAPIError as error:
            _fail(error)
    table = Table("status", "model", "framework", "epochs", "best", "created")
    table.columns.insert(0, Column("id", no_wrap=True, min_width=36))
    for job in items:
        best = job["best_metrics"] or {}
        table.add_row(job["id"], job["status"], job["model_name"], job["framework"],
                      f"{job['epochs_done']}/{job['epochs']}",
                      ", ".join(f"{k}={v:.4g}" for k, v in best.items()
                                if not k.endswith("_epoch")),
                      job["created_at"][:19])
    console.print(table)


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a job: at once if queued, within a batch if running."""
    with Client() as client:
        try:
            job = client.cancel(job_id)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"job {job_id}: {job['status']}"
                  + (" (stopping within a batch)" if job["status"] == "running" else ""))


@app.command()
def job(job_id: str) -> None:
    """Show one job as JSON."""
    with Client() as client:
        try:
            console.print_json(data=client.job(job_id))
        except CapasAPIError as error:
            _fail(error)


@app.command()
def predict(model: str,
            input: Annotated[Path, typer.Option(
                "--input", "-i", help='JSON file: a list of instances or {"instances": [...]}')],
            version: Annotated[int | None, typer.Option(help="this version")] = None,
            alias: Annotated[str | None, typer.Option(
                help="the version this alias points at (default: production, else latest)")
            ] = None) -> None:
    """Predict with a published model."""
    data = json.loads(input.read_text())
    instances = data["instances"] if isinstance(data, dict) else data
    with Client() as client:
        try:
            console.print_json(data=client.predict(model, instances, version=version,
                                                   alias=alias))
        except CapasAPIError as error:
            _fail(error)


def _shape(dataset: dict) -> str:
    return "×".join(map(str, dataset["feature_shape"]))


@datasets_app.command("upload")
def datasets_upload(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                             help=".csv, .npz (x, y) or .zip of class folders")],
        target: Annotated[str | None, typer.Option(help="CSV: the column to predict")] = None,
        task: Annotated[str | None, typer.Option(
            help="classification or regression (inferred from the target otherwise)")] = None,
        name: Annotated[str | None, typer.Option(help="shown in listings (the file name)")] = None,
        description: str | None = None,
        image_size: Annotated[str | None, typer.Option(
            help="ZIP: HEIGHTxWIDTH to resize every image to (the most common otherwise)")] = None,
        channels: Annotated[int | None, typer.Option(
            help="ZIP: 1 (grey) or 3 (colour); grey only if every image is")] = None) -> None:
    """Upload a dataset file; prints its id and schema."""
    with Client() as client:
        try:
            dataset = client.upload_dataset(file, target=target, task=task, name=name,
                                            description=description, image_size=image_size,
                                            channels=channels)
        except CapasAPIError as error:
            _fail(error)
    classes = (f", classes {', '.join(dataset['class_names'])}" if dataset["class_names"]
               else "")
    console.print(f"dataset [bold]{dataset['id']}[/] ({dataset['name']}): "
                  f"{dataset['num_samples']} samples of {_shape(dataset)}, "
                  f"{dataset['task']}{classes}")


@datasets_app.command("list")
def datasets_list() -> None:
    """List the built-in datasets, yours and the public ones (everyone's for an admin)."""
    with Client() as client:
        try:
            items = client.datasets()
        except CapasAPIError as error:
            _fail(error)
    table = Table("name", "task", "kind", "features", "samples", "classes", "public",
                  "created")
    table.columns.insert(0, Column("id", no_wrap=True))
    for dataset in items:
        table.add_row(dataset["id"], dataset["name"], dataset["task"], dataset["kind"],
                      _shape(dataset), str(dataset["num_samples"]),
                      str(dataset["num_classes"] or ""), _yes(dataset["public"]),
                      (dataset["created_at"] or "")[:19])
    console.print(table)


@datasets_app.command("show")
def datasets_show(dataset_id: str) -> None:
    """Show one dataset's schema and first samples as JSON."""
    with Client() as client:
        try:
            console.print_json(data=client.dataset(dataset_id))
        except CapasAPIError as error:
            _fail(error)


@users_app.command("create")
def users_create(name: str,
                 role: Annotated[str, typer.Option(help="member, admin or app")] = "member",
                 model: Annotated[list[str] | None, typer.Option(
                     help="for an app: a model it may predict with (repeat for more)")] = None
                 ) -> None:
    """Add a user and print its first API key, shown this once."""
    with Client() as client:
        try:
            user = client.create_user(name, role, model)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"user {user['name']} ({user['role']}), key (shown once): {user['api_key']}")


@keys_app.command("create")
def keys_create(user_id: Annotated[int | None, typer.Option(
        help="an admin may make a key for another user")] = None) -> None:
    """Make a new API key, printed this once."""
    with Client() as client:
        try:
            key = client.create_key(user_id)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"key {key['id']} (shown once): {key['api_key']}")


@keys_app.command("list")
def keys_list(user_id: int | None = None) -> None:
    """List keys by id and prefix (the keys themselves are never shown again)."""
    with Client() as client:
        try:
            keys = client.keys(user_id)
        except CapasAPIError as error:
            _fail(error)
    table = Table("id", "prefix", "created", "revoked")
    for key in keys:
        table.add_row(str(key["id"]), key["prefix"], key["created_at"][:19],
                      (key["revoked_at"] or "")[:19])
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with Client() as client:
        try:
            client.revoke_key(key_id)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"key {key_id} revoked")


@app.command()
def models() -> None:
    """List the registry: models, their latest version and aliases."""
    with Client() as client:
        try:
            items = client.models()
        except CapasAPIError as error:
            _fail(error)
    table = Table("model", "versions", "latest", "aliases", "frameworks", "public")
    for item in items:
        table.add_row(item["name"], str(len(item["versions"])),
                      str(item["latest_version"] or "—"),
                      ", ".join(f"{a}→{v}" for a, v in item["aliases"].items()),
                      ", ".join(sorted({v["framework"] for v in item["versions"]})),
                      _yes(item["public"]))
    console.print(table)


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


PrivateOption = Annotated[bool, typer.Option(
    "--private", help="Close it again: only its owner (and admins) may use it.")]


def _share(kind: str, ident: str, private: bool) -> None:
    """Open a `kind` ("model" or "dataset") to every member, or close it."""
    with Client() as client:
        try:
            getattr(client, f"set_{kind}_public")(ident, not private)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"{kind} {ident} is now {'private' if private else 'public'}")


@app.command()
def share(model: str, private: PrivateOption = False) -> None:
    """Make a model of yours public: every member may read it and predict with it."""
    _share("model", model, private)


@datasets_app.command("share")
def datasets_share(dataset_id: str, private: PrivateOption = False) -> None:
    """Make a dataset of yours public: every member may list, inspect and train on it."""
    _share("dataset", dataset_id, private)


@app.command()
def card(model: str, version: int) -> None:
    """Show the model card of one version as JSON."""
    with Client() as client:
        try:
            console.print_json(data=client.model_version(model, version))
        except CapasAPIError as error:
            _fail(error)


@datasets_app.command("delete")
def datasets_delete(dataset_id: str) -> None:
    """Delete an uploaded dataset (refused while a queued or running job uses it)."""
    with Client() as client:
        try:
            client.delete_dataset(dataset_id)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"dataset {dataset_id} deleted")


@app.command()
def alias(model: str, name: str, version: int) -> None:
    """Point an alias (e.g. production) at a version of a model."""
    with Client() as client:
        try:
            moved = client.set_alias(model, name, version)
        except CapasAPIError as error:
            _fail(error)
    previous = moved["history"][-1]["previous_version"]
    console.print(f"{model}@{name} → version {version}"
                  + (f" (was {previous})" if previous else ""))


@app.command()
def unalias(model: str, name: str) -> None:
    """Remove an alias of a model; its history keeps the removal."""
    with Client() as client:
        try:
            client.remove_alias(model, name)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"{model}@{name} removed")


@app.command()
def download(model: str, version: int,
             format: Annotated[str, typer.Option(
                 "--format", "-f", help="one the version has (`capas catalog formats` lists "
                                        "them all)")] = "onnx",
             output: Annotated[Path | None, typer.Option(
                 "--output", "-o", help="file to write (default: MODEL-vVERSION.EXT)")] = None,
             ) -> None:
    """Download an artifact of a version, checked against the sha256 on its card."""
    with Client() as client:
        try:
            suffixes = {f["name"]: f["suffix"] for f in client.catalog()["formats"]}
            destination = output or Path(f"{model}-v{version}{suffixes.get(format, '')}")
            saved = client.download(model, version, format, destination)
        except CapasAPIError as error:
            _fail(error)
    console.print(f"saved {saved}")


admin_app = typer.Typer(help="On the server host, with its settings: recover admin access.",
                        no_args_is_help=True)
app.add_typer(admin_app, name="admin")


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
        err.print("error:", error.message, style="red", markup=False)
        raise typer.Exit(1) from None
    console.print(f"new key for admin {admin.name} (shown once): {key}", markup=False)
    console.print(f"saved to {settings.credentials_file}", markup=False)


if __name__ == "__main__":
    app()
