"""The model registry: `predict`, `models`, `share`, `card`, `alias`, `unalias`, `download`."""

from pathlib import Path
from typing import Annotated

import typer

from capas.cli import sharing
from capas.cli.console import api_client, console, fail, print_table, read_json, say

app = typer.Typer()


@app.command()
def predict(model: str,
            input: Annotated[Path, typer.Option(
                "--input", "-i", help='JSON file: a list of instances or {"instances": [...]}')],
            version: Annotated[int | None, typer.Option(help="this version")] = None,
            alias: Annotated[str | None, typer.Option(
                help="the version this alias points at (default: production, else latest)")
            ] = None) -> None:
    """Predict with a published model."""
    data = read_json(input, "input file")
    if isinstance(data, dict) and "instances" not in data:
        fail(f"input file '{input}' holds an object without \"instances\" (its keys: "
             f"{', '.join(data) or 'none'}); write a list of instances or "
             '{"instances": [...]}')
    instances = data["instances"] if isinstance(data, dict) else data
    with api_client() as client:
        console.print_json(data=client.predict(model, instances, version=version, alias=alias))


@app.command()
def models() -> None:
    """List the registry: models, their latest version and aliases."""
    with api_client() as client:
        items = client.models()
    print_table(["model", "versions", "latest", "aliases", "frameworks", "public"],
                ([item["name"], str(len(item["versions"])), str(item["latest_version"] or "—"),
                  ", ".join(f"{a}→{v}" for a, v in item["aliases"].items()),
                  ", ".join(sorted({v["framework"] for v in item["versions"]})),
                  sharing.public_mark(item["public"])] for item in items),
                whole=("model",), droppable=("public", "frameworks"))


@app.command()
def share(model: str, private: sharing.PrivateOption = False) -> None:
    """Make a model of yours public: every member may read it and predict with it."""
    sharing.share("model", model, private)


@app.command()
def card(model: str, version: int) -> None:
    """Show the model card of one version as JSON."""
    with api_client() as client:
        console.print_json(data=client.model_version(model, version))


@app.command()
def alias(model: str, name: str, version: int) -> None:
    """Point an alias (e.g. production) at a version of a model."""
    with api_client() as client:
        moved = client.set_alias(model, name, version)
    previous = moved["history"][-1]["previous_version"]
    say(f"{model}@{name} → version {version}" + (f" (was {previous})" if previous else ""))


@app.command()
def unalias(model: str, name: str) -> None:
    """Remove an alias of a model; its history keeps the removal."""
    with api_client() as client:
        client.remove_alias(model, name)
    say(f"{model}@{name} removed")


@app.command()
def download(model: str, version: int,
             format: Annotated[str, typer.Option(
                 "--format", "-f", help="one the version has (`capas catalog formats` lists "
                                        "them all)")] = "onnx",
             output: Annotated[Path | None, typer.Option(
                 "--output", "-o", help="file to write (default: MODEL-vVERSION.EXT)")] = None,
             ) -> None:
    """Download an artifact of a version, checked against the sha256 on its card."""
    with api_client() as client:
        suffixes = {f["name"]: f["suffix"] for f in client.catalog()["formats"]}
        destination = output or Path(f"{model}-v{version}{suffixes.get(format, '')}")
        saved = client.download(model, version, format, destination)
    say(f"saved {saved}")
