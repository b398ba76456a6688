"""`capas datasets`: upload, list, show, share and delete datasets."""

from pathlib import Path
from typing import Annotated

import typer

from capas.cli import sharing
from capas.cli.console import api_client, console, print_table, say

app = typer.Typer(help="Upload, list, show and delete datasets.", no_args_is_help=True)


def _shape(dataset: dict) -> str:
    return "×".join(map(str, dataset["feature_shape"]))


@app.command("upload")
def upload(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                             help=".csv, .npz (x, y), .zip of class folders, or "
                                                  ".zip/.tar(.gz) of IDX or CIFAR files")],
        target: Annotated[str | None, typer.Option(
            help="CSV: the column to predict; CIFAR-100: fine or coarse")] = None,
        task: Annotated[str | None, typer.Option(
            help="classification or regression (inferred from the target otherwise)")] = None,
        name: Annotated[str | None, typer.Option(help="shown in listings (the file name)")] = None,
        description: str | None = None,
        image_size: Annotated[str | None, typer.Option(
            help="ZIP: HEIGHTxWIDTH to resize every image to (the most common otherwise)")] = None,
        channels: Annotated[int | None, typer.Option(
            help="ZIP: 1 (grey) or 3 (colour); grey only if every image is")] = None) -> None:
    """Upload a dataset file; prints its id and schema."""
    with api_client() as client:
        dataset = client.upload_dataset(file, target=target, task=task, name=name,
                                        description=description, image_size=image_size,
                                        channels=channels)
    classes = (f", classes {', '.join(dataset['class_names'])}" if dataset["class_names"]
               else "")
    say(f"dataset {dataset['id']} ({dataset['name']}): "
                  f"{dataset['num_samples']} samples of {_shape(dataset)}, "
                  f"{dataset['task']}{classes}")


@app.command("list")
def list_datasets() -> None:
    """List the built-in datasets, yours and the public ones (everyone's for an admin); a
    narrow terminal drops the upload time, then the public mark, the kind and the classes."""
    with api_client() as client:
        items = client.datasets()
    print_table(["id", "name", "task", "kind", "features", "samples", "classes", "public",
                 "created"],
                ([dataset["id"], dataset["name"], dataset["task"], dataset["kind"],
                  _shape(dataset), str(dataset["num_samples"]),
                  str(dataset["num_classes"] or ""), sharing.public_mark(dataset["public"]),
                  (dataset["created_at"] or "")[:16].replace("T", " ")] for dataset in items),
                droppable=("created", "public", "kind", "classes"))


@app.command("show")
def show(dataset_id: str) -> None:
    """Show one dataset's schema and first samples as JSON."""
    with api_client() as client:
        console.print_json(data=client.dataset(dataset_id))


@app.command("share")
def share(dataset_id: str, private: sharing.PrivateOption = False) -> None:
    """Make a dataset of yours public: every member may list, inspect and train on it."""
    sharing.share("dataset", dataset_id, private)


@app.command("delete")
def delete(dataset_id: str) -> None:
    """Delete an uploaded dataset (refused while a queued or running job uses it)."""
    with api_client() as client:
        client.delete_dataset(dataset_id)
    say(f"dataset {dataset_id} deleted")
