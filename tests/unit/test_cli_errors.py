"""Every `capas` command that calls the API prints a refusal the same way, each detail with the
value received, and exits 1."""

import json

import typer

from capas.cli import app
from tests.conftest import tiny_job

UNKNOWN_JOB = "00000000-0000-0000-0000-000000000000"
# Run on the server host, with its settings: they call no API.
SERVER_SIDE = {"up", "api", "worker", "migrate", "admin reset-key"}


def _command_paths(group, prefix: str = "") -> set[str]:
    paths = set()
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        paths |= _command_paths(command, f"{path} ") if hasattr(command, "commands") else {path}
    return paths


def test_a_refusal_is_printed_with_its_status_code_and_message(capas):
    refused = capas("job", UNKNOWN_JOB)
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith(f"error 404 (not_found): job '{UNKNOWN_JOB}' not found\n")


def test_each_detail_of_a_refusal_is_printed_with_the_value_received(capas, tmp_path):
    job = tiny_job()
    job["model"]["layers"][0]["units"] = -3
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(job))
    refused = capas("submit", str(spec))
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "error 422 (invalid): the job spec is invalid: model.layers[0].units: expected a "
        "positive integer, received -3"]


def test_every_command_that_calls_the_api_prints_a_refused_key_and_exits_1(capas, tmp_path):
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(tiny_job()))
    instances = tmp_path / "instances.json"
    instances.write_text("[[1, 2, 3, 4]]")
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,a\n2,b\n")
    arguments = {"validate": [spec], "catalog": [], "submit": [spec], "jobs": [],
                 "cancel": [UNKNOWN_JOB], "job": [UNKNOWN_JOB],
                 "predict": ["tiny", "-i", instances], "models": [], "share": ["tiny"],
                 "card": ["tiny", "1"], "alias": ["tiny", "production", "1"],
                 "unalias": ["tiny", "production"], "download": ["tiny", "1"],
                 "datasets upload": [data], "datasets list": [], "datasets show": ["ds"],
                 "datasets share": ["ds"], "datasets delete": ["ds"], "users create": ["ada"],
                 "users list": [],
                 "keys create": [], "keys list": [], "keys revoke": ["1"],
                 "study submit": [spec], "study watch": ["s"], "study list": [],
                 "study show": ["s"], "study cancel": ["s"], "study publish": ["s"],
                 "evaluation": [UNKNOWN_JOB], "evaluate": ["tiny", "1", "--dataset", "ds"],
                 "code": [UNKNOWN_JOB]}
    assert set(arguments) == _command_paths(typer.main.get_command(app)) - SERVER_SIDE
    for command, args in arguments.items():
        refused = capas(*command.split(), *map(str, args), key="capas_not-a-key")
        assert (refused.exit_code, refused.stdout, refused.stderr) == (
            1, "", "error 401 (unauthorized): invalid or revoked API key\n"), command
