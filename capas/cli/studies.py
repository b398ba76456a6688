"""Studies: `capas study submit FILE [--watch]`, `watch`, `list`, `show`, `cancel`, `publish`."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Column, Table
from rich.text import Text

from capas.cli.console import api_client, console, fail, print_table, read_json, say
from capas.client import Client

app = typer.Typer(help="Many trainings as one experiment: a search space over a job, an "
                       "objective, a budget.", no_args_is_help=True)


@app.command()
def submit(study_file: Path,
           watch: Annotated[bool, typer.Option(
               help="follow the trials in a live table until the study is over")] = False
           ) -> None:
    """Start a study from a JSON file: its first trials are queued at once."""
    body = read_json(study_file, "study file")
    with api_client() as client:
        study = client.submit_study(body)
        say(f"study {study['id']} started: {study['max_trials']} trials, at most "
                      f"{study['max_concurrent']} at once")
        if watch:
            _watch(client, study["id"])


@app.command("watch")
def watch_study(study_id: str) -> None:
    """Follow a study's trials in a live table until it is over."""
    with api_client() as client:
        _watch(client, study_id)


def _watch(client: Client, study_id: str) -> None:
    study = client.study(study_id)
    # The objective of each running trial's last epoch, as its events arrive.
    live_values: dict[int, tuple[int, float | None]] = {}
    metric = study["objective"]["metric"]
    with Live(_render(study, live_values), console=console, auto_refresh=False) as live:
        for _, kind, data in client.study_events(study_id):
            if kind == "epoch":
                live_values[data["trial"]] = (data["epoch"], data.get(metric))
            elif kind == "status":
                study = client.study(study_id)
            live.update(_render(study, live_values), refresh=True)
        study = client.study(study_id)
        live.update(_render(study, {}), refresh=True)
    best = study["best"]
    if best is None:
        fail(f"study {study['status']} with no succeeded trial")
    version = (f"; model version {best['model_version']}"
               if best.get("model_version") is not None else "")
    say(f"{study['status']}: best trial {best['number']}, {metric} "
                  f"{best['value']:.4g} with {_params(best['params'])}{version}")
    if study["status"] != "finished":
        raise typer.Exit(1)


def _render(study: dict, live_values: dict[int, tuple[int, float | None]]) -> Group:
    metric = study["objective"]["metric"]
    best = (study.get("best") or {}).get("number")
    table = Table(Column("#", justify="right"), Column("status", no_wrap=True), "epochs",
                  metric, "parameters", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for trial in study["trials"]:
        epochs, value = live_values.get(trial["number"], (trial["epochs_done"], None))
        value = trial["value"] if trial["value"] is not None else value
        note = trial.get("pruned_reason") or trial.get("failure_reason") or ""
        table.add_row(str(trial["number"]) + (" *" if trial["number"] == best else ""),
                      trial["status"], str(max(epochs, trial["epochs_done"])),
                      "" if value is None else f"{value:.4g}",
                      Text(_params(trial["params"]) + (f" ({note})" if note else "")))
    started = f"{study['trials_started']}/{study['max_trials']} trials started"
    return Group(Text(f"study {study['name']} ({study['id']}): {study['status']}, {started}; "
                      f"{study['objective']['direction']} {metric}"), table)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{path}={json.dumps(value)}" for path, value in params.items())


@app.command("list")
def list_studies(limit: int = 20) -> None:
    """List recent studies with their trials' counts."""
    with api_client() as client:
        items = client.studies(limit=limit)
    print_table(["id", "status", "name", "objective", "trials", "created"],
                ([study["id"], study["status"], study["name"],
                  f"{study['objective']['direction']} {study['objective']['metric']}",
                  ", ".join(f"{count} {status}" for status, count in study["counts"].items()),
                  study["created_at"][:16].replace("T", " ")] for study in items),
                droppable=("created", "objective"))


@app.command()
def show(study_id: str,
         as_json: Annotated[bool, typer.Option("--json", help="the whole study as JSON")] = False
         ) -> None:
    """Show a study: every trial with its parameters, status and value, and the best."""
    with api_client() as client:
        study = client.study(study_id)
    if as_json:
        console.print_json(data=study)
        return
    console.print(_render(study, {}))


@app.command()
def cancel(study_id: str) -> None:
    """Cancel a study: no trial starts after this, queued ones are cancelled, running ones stop
    within a batch."""
    with api_client() as client:
        study = client.cancel_study(study_id)
    say(f"study {study_id}: {study['status']}")


@app.command()
def publish(study_id: str,
            alias: Annotated[str | None, typer.Option(
                help="point this alias of the model at the version (e.g. production)")] = None
            ) -> None:
    """Publish the best trial so far as a version of its model (and alias it)."""
    with api_client() as client:
        published = client.publish_best(study_id, alias)
    say(f"trial {published['trial']}: model {published['model']} version "
                  f"{published['version']}"
                  + (f", alias {published['alias']}" if published["alias"] else ""))
