"""Specs and jobs: `validate`, `catalog`, `submit` (and `--watch`), `jobs`, `cancel`, `job`."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from capas.cli.console import api_client, console, err
from capas.client import Client

app = typer.Typer()


@app.command()
def validate(spec_file: Path) -> None:
    """Check a job file: each layer's output shape and parameters, and every error at once."""
    body = json.loads(spec_file.read_text())
    with api_client() as client:
        report = client.validate(body)
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
    with api_client() as client:
        entries = client.catalog()
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
    with api_client() as client:
        job = client.submit(body, framework=framework, submission_id=submission_id)
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
    with api_client() as client:
        items = client.jobs(status=status, limit=limit)
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
    with api_client() as client:
        job = client.cancel(job_id)
    console.print(f"job {job_id}: {job['status']}"
                  + (" (stopping within a batch)" if job["status"] == "running" else ""))


@app.command()
def job(job_id: str) -> None:
    """Show one job as JSON."""
    with api_client() as client:
        console.print_json(data=client.job(job_id))
