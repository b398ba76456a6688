"""Specs and jobs: `validate`, `catalog`, `submit` (and `--watch`), `jobs`, `cancel`, `job`."""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from capas.cli import datasets
from capas.cli.console import api_client, console, err, fail, print_table, read_json, say
from capas.client import Client

app = typer.Typer()


@app.command()
def validate(spec_file: Path) -> None:
    """Check a job file: each layer's output shape and parameters, and every error at once."""
    body = read_json(spec_file, "spec file")
    with api_client() as client:
        report = client.validate(body)
    if report.get("layers"):
        layers = body.get("model", {}).get("layers", [])
        print_table(["#", "layer", "output shape", "parameters", "multiply-adds a sample"],
                    ([str(row["index"]), layers[row["index"]].get("type", "?"),
                      "×".join(map(str, row["output_shape"])), f"{row['params']:,}",
                      f"{row['multiply_adds']:,}"] for row in report["layers"]),
                    whole=("#", "layer"))
        console.print(f"total parameters: {report['total_params']:,}; multiply-adds a sample: "
                      f"{report['total_multiply_adds']:,}")
    for error in report["errors"]:
        err.print(f"{error['field']}: {error['message']}", style="red", markup=False,
                  highlight=False, soft_wrap=True)
    if not report["valid"]:
        raise typer.Exit(1)
    console.print("valid", style="green")


# What the catalog's lists say of each entry, as columns, in this order (a list shows those
# its entries have).
CATALOG_COLUMNS = ("formula", "range", "task", "default", "parameters", "suffix", "finished",
                   "description")


@app.command()
def catalog(kind: Annotated[str, typer.Argument(
        help="one of the catalog's lists: layers, activations, optimizers, training, "
             "datasets, … (an unknown one names them all)")] = "activations") -> None:
    """Show the vocabulary of the spec language, as `GET /catalog` serves it."""
    if kind == "datasets":
        datasets.list_datasets()
        return
    with api_client() as client:
        entries = client.catalog()
    kinds = [name for name, entry in entries.items() if isinstance(entry, list)] + ["datasets"]
    if kind not in kinds:
        fail(f"kind: unknown '{kind}'; choose from {', '.join(kinds)}")
    listed = entries[kind]
    columns = [c for c in CATALOG_COLUMNS if any(c in entry for entry in listed)]
    print_table(["name", *columns],
                ([entry.get("name") or entry.get("type"),
                  *(_cell(column, entry.get(column)) for column in columns)]
                 for entry in listed),
                whole=("name",))


def _cell(column: str, value: object) -> str:
    """An entry's value as a column shows it: a layer's or an optimizer's parameters with their
    defaults; names as they are, other values as JSON."""
    if value is None:
        return ""
    if column == "parameters":
        return ", ".join(p["name"] + (f"={_text(p['default'])}" if "default" in p else "")
                         for p in value)
    return _text(value)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@app.command()
def submit(spec_file: Path,
           framework: Annotated[str | None, typer.Option(
               help="tensorflow or pytorch; overrides the file's framework")] = None,
           watch: Annotated[bool, typer.Option(help="follow the job until it ends")] = False,
           submission_id: Annotated[str | None, typer.Option(
               help="idempotency key: resubmitting returns the same job")] = None,
           name: Annotated[str | None, typer.Option(
               help="a label for this run, shown in `capas jobs`")] = None,
           note: Annotated[str | None, typer.Option(
               help="what this run tries, shown with the job")] = None) -> None:
    """Queue a training job from a JSON file."""
    body = read_json(spec_file, "spec file")
    with api_client() as client:
        job = client.submit(body, framework=framework, submission_id=submission_id,
                            name=name, note=note)
        say(f"job {job['id']} queued ({job['framework']}, model {job['model_name']})")
        if watch:
            _watch(client, job)


class EpochProgress(Progress):
    """The job's status, a bar of its epochs and the time it took on one line, and the last
    epoch's metrics on the next, where they wrap: the bar keeps its place at any width."""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields["stats"]:
                yield Text(task.fields["stats"])


def _watch(client: Client, submitted: dict) -> None:
    columns = (TextColumn("{task.description}", table_column=Column(no_wrap=True)),
               BarColumn(bar_width=None), TextColumn("epoch"), MofNCompleteColumn(),
               TimeElapsedColumn())
    # The model's metrics of an epoch, without the bookkeeping columns.
    shown = [m["name"] for m in client.catalog()["metrics"] if not m["bookkeeping"]]
    with EpochProgress(*columns, console=console, expand=True) as progress:
        task = progress.add_task("queued", total=submitted["epochs"], stats="")

        def reconnecting(error: Exception) -> None:
            # The job goes on without us: say so, and resume where the stream broke off.
            progress.update(task, description="reconnecting",
                            stats=f"the API at {client.url} does not answer "
                                  f"({type(error).__name__}); trying again every second")

        for _, kind, data in client.events(submitted["id"], on_retry=reconnecting):
            if kind == "epoch":
                stats = "  ".join(f"{k} {data[k]:.4f}" for k in shown if data.get(k) is not None)
                progress.update(task, completed=data["epoch"], stats=stats)
            elif kind == "status":
                progress.update(task, description=data["status"])
    job = client.job(submitted["id"])
    if job["status"] == "succeeded":
        test = {k: round(v, 4) for k, v in job["final_metrics"].items() if k.startswith("test_")}
        say(f"succeeded: model {job['model_name']} version {job['model_version']}; "
                      f"{test}")
        for flag in job.get("coach") or []:
            err.print(f"coach: {_coach_line(flag)}", style="yellow", markup=False,
                      highlight=False, soft_wrap=True)
    else:
        fail(f"job {job['status']}: {job['failure_reason']}")


@app.command()
def jobs(status: str | None = None, limit: int = 20) -> None:
    """List recent jobs; a narrow terminal drops the creation time, then the framework."""
    with api_client() as client:
        items = client.jobs(status=status, limit=limit)
    print_table(["id", "status", "model", "name", "framework", "epochs", "best", "created"],
                ([job["id"], _status(job), job["model_name"], job["name"] or "",
                  job["framework"],
                  f"{job['epochs_done']}/{job['epochs']}",
                  ", ".join(f"{k} {v:.4g}" for k, v in (job["best_metrics"] or {}).items()
                            if not k.endswith("_epoch")),
                  job["created_at"][:16].replace("T", " ")] for job in items),
                droppable=("created", "framework", "name"))


def _status(job: dict) -> str:
    """The status, with what the training coach flagged (`capas job ID` says it in words)."""
    flags = [flag["code"] for flag in job.get("coach") or []]
    return job["status"] + (f" ({', '.join(flags)})" if flags else "")


def _coach_line(flag: dict) -> str:
    helps = ", ".join(f"{link['label']} (capas catalog {link['section']})"
                      for link in flag["links"])
    return f"{flag['message']} See: {helps}."


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a job: at once if queued, within a batch if running."""
    with api_client() as client:
        job = client.cancel(job_id)
    say(f"job {job_id}: {job['status']}"
        + (" (stopping within a batch)" if job["status"] == "running" else ""))


@app.command()
def job(job_id: str) -> None:
    """Show one job as JSON, then what the training coach flagged in words."""
    with api_client() as client:
        found = client.job(job_id)
    console.print_json(data=found)
    for flag in found.get("coach") or []:
        err.print(f"coach: {_coach_line(flag)}", style="yellow", markup=False, highlight=False,
                  soft_wrap=True)
