"""`GET /catalog` is the clients' one source: every parameter it lists is described, it names the
job statuses and download formats, and the README's vocabulary tables list exactly its names
and formulas."""

import re

from core.models import FINISHED_STATUSES, JobStatus
from ml.artifacts import FORMAT_FILES
from ml.catalog import ACTIVATION_ALIASES, ACTIVATIONS, COMBINATIONS
from ml.spec import catalog
from tests.conftest import ROOT


def _undescribed(parameters: list[dict], path: str) -> list[str]:
    missing = []
    for parameter in parameters:
        where = f"{path}.{parameter['name']}"
        if not parameter["description"].strip():
            missing.append(where)
        missing += _undescribed(parameter.get("parameters", []), where)
    return missing


def test_every_parameter_has_a_description():
    served = catalog()
    missing = [where for layer in served["layers"]
               for where in _undescribed(layer["parameters"], f"layers.{layer['type']}")]
    missing += [where for optimizer in served["optimizers"]
                for where in _undescribed(optimizer["parameters"],
                                          f"optimizers.{optimizer['type']}")]
    for block in ("job", "model", "training"):
        missing += _undescribed(served[block], block)
    assert missing == [], f"parameters without a description: {', '.join(missing)}"


def test_every_layer_type_is_described():
    assert [layer["type"] for layer in catalog()["layers"] if not layer["description"]] == []


def test_the_served_catalog_names_job_statuses_and_download_formats(api):
    served = api.get("/catalog").json()
    assert served["job_statuses"] == [
        {"name": status.value, "finished": status in FINISHED_STATUSES} for status in JobStatus]
    assert [f["name"] for f in served["formats"]] == list(FORMAT_FILES)
    assert {f["name"]: f["suffix"] for f in served["formats"]}["safetensors"] == ".safetensors"
    assert served["layers"] == catalog()["layers"]


# --- the README's tables --------------------------------------------------------------------

README = (ROOT / "README.md").read_text()
CODE = re.compile(r"`([^`]+)`")


def _cells(row: str) -> list[str]:
    """A table row's cells, with `\\|` (a bar inside a cell) read as `|`."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def _table(first_header: str) -> list[list[str]]:
    """The rows of the README's table whose header starts with `first_header`."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return rows


def _names(cell: str) -> list[str]:
    """The names a cell lists: code spans outside parentheses (those inside are parameters,
    aliases or notes)."""
    depth, outside = 0, ""
    for char in cell:
        depth += char == "("
        outside += char if depth == 0 else ""
        depth -= char == ")"
    return CODE.findall(outside)


def test_the_readme_lists_exactly_the_catalogs_names():
    served = catalog()
    listed = {row[0]: _names(row[1]) for row in _table("kind")}
    assert listed["layers"] == [layer["type"] for layer in served["layers"]]
    assert listed["objectives"] == [o["name"] for o in served["objectives"]]
    assert listed["optimizers"] == [o["type"] for o in served["optimizers"]]
    assert listed["initializers"] == [i["name"] for i in served["initializers"]]


def test_the_readme_states_the_catalogs_activations_and_combinations():
    activations = _table("activation")
    assert [_names(row[0]) for row in activations] == [[name] for name in ACTIVATIONS]
    assert {row[0]: CODE.findall(row[1])[0] for row in activations} == {
        f"`{name}`" + "".join(f" (alias `{alias}`)" for alias, to in ACTIVATION_ALIASES.items()
                              if to == name): info.formula
        for name, info in ACTIVATIONS.items()}
    assert [row[2] for row in activations] == [info.range for info in ACTIVATIONS.values()]
    combinations = _table("combination")
    assert [(row[0], row[1]) for row in combinations] == [
        (f"`{name}`", f"`{info.formula}`") for name, info in COMBINATIONS.items()]
