"""The `capas` command as a person meets it in an 80-column terminal: tables and the progress
of `--watch` that read whole, errors said once in a sentence and as written, where it connects,
and the event stream's parsing."""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from typer.testing import CliRunner

from capas.cli import app as capas_command
from capas.client import Client
from core.services.training import TrainingService
from tests.conftest import ROOT, free_port, tiny_job

COLUMNS = 80


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _fits(text: str) -> bool:
    return all(len(line) <= COLUMNS for line in _lines(text))


def _spec(tmp_path, job: dict, name: str = "job.json"):
    path = tmp_path / name
    path.write_text(json.dumps(job))
    return str(path)


def test_jobs_and_datasets_read_whole_at_80_columns(capas, tmp_path):
    queued = capas("submit", _spec(tmp_path, tiny_job()))
    job_id = queued.stdout.split()[1]
    listed = capas("jobs", columns=COLUMNS)
    assert listed.exit_code == 0 and _fits(listed.stdout), listed.stdout
    row = next(line for line in _lines(listed.stdout) if line.startswith(job_id))
    assert row.split()[:4] == [job_id, "queued", "tiny", "0/3"]
    datasets = capas("datasets", "list", columns=COLUMNS)
    assert datasets.exit_code == 0 and _fits(datasets.stdout), datasets.stdout
    assert "…" not in datasets.stdout
    row = next(line for line in _lines(datasets.stdout) if line.startswith("builtin:breast"))
    assert row.split()[:5] == ["builtin:breast_cancer", "breast_cancer", "classification",
                               "30", "569"]
    # wide, every column is there
    assert capas("jobs").stdout.split()[:8] == ["id", "status", "model", "name", "framework",
                                                "epochs", "best", "created"]


def test_watch_shows_the_bar_the_epochs_and_the_metrics_at_80_columns(capas, api, tmp_path):
    spec = _spec(tmp_path, tiny_job())
    first = capas("submit", spec, "--submission-id", "watched")
    job_id = first.stdout.split()[1]
    TrainingService(api.settings).run(job_id, "unit-worker")
    # The same submission again: the finished job, whose events the watch reads from the start.
    watched = capas("submit", spec, "--submission-id", "watched", "--watch", columns=COLUMNS)
    assert watched.exit_code == 0, watched.stdout + watched.stderr
    assert _fits(watched.stdout), watched.stdout
    bar = next(line for line in _lines(watched.stdout) if line.startswith("succeeded"))
    assert "━" in bar and "epoch 3/3" in bar
    assert any(line.startswith("loss ") and "val_accuracy" in line
               for line in _lines(watched.stdout)), watched.stdout
    assert "model tiny version 1" in watched.stdout


def test_an_error_is_printed_once_with_its_brackets(capas, tmp_path):
    job = tiny_job()
    job["model"]["input"] = {"shape": [8, 8]}
    job["model"]["layers"].insert(0, {"type": "conv2d", "filters": 2, "kernel_size": 3})
    refused = capas("submit", _spec(tmp_path, job), columns=COLUMNS)
    assert refused.exit_code == 1
    assert refused.stderr.count("conv2d expects input of shape") == 1, refused.stderr
    assert "[height, width, channels]" in refused.stderr.replace("\n", " ")
    validated = capas("validate", _spec(tmp_path, job))
    assert validated.exit_code == 1 and "[height, width, channels]" in validated.stderr


def test_files_that_cannot_be_read_are_named_in_a_sentence(capas, tmp_path):
    missing = capas("submit", str(tmp_path / "nope.json"))
    assert (missing.exit_code, missing.stderr) == (
        1, f"error: spec file '{tmp_path / 'nope.json'}' does not exist\n")
    broken = tmp_path / "broken.json"
    broken.write_text('{"model": ')
    not_json = capas("validate", str(broken))
    assert not_json.exit_code == 1
    assert not_json.stderr.startswith(f"error: spec file '{broken}' is not JSON: line 1, "
                                      "column 11: Expecting value")
    no_instances = tmp_path / "instances.json"
    no_instances.write_text('{"rows": [[1, 2, 3, 4]]}')
    refused = capas("predict", "tiny", "--input", str(no_instances))
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: input file '{no_instances}' holds an object "
                                     'without "instances" (its keys: rows)')
    for result in (missing, not_json, refused):
        assert "Traceback" not in result.stderr and result.exception.__class__ is SystemExit


def test_an_api_that_does_not_answer_is_a_sentence(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(capas_command, ["--url", url, "jobs"],
                                env={"COLUMNS": "80", "CAPAS_API_KEY": "capas_x",
                                     "CAPAS_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: cannot reach the Capas API at {url} (ConnectError")
    assert "Is it running (`capas up`)" in result.stderr and "Traceback" not in result.stderr


def test_users_list(capas):
    capas("users", "create", "ada")
    listed = capas("users", "list", columns=COLUMNS)
    assert listed.exit_code == 0
    rows = [line.split() for line in _lines(listed.stdout)[2:]]
    assert [row[1:3] for row in rows] == [["admin", "admin"], ["ada", "member"]]


def test_catalog_lists_show_their_columns_and_datasets(capas):
    training = capas("catalog", "training", columns=COLUMNS)
    assert training.exit_code == 0 and _fits(training.stdout)
    assert _lines(training.stdout)[0].split() == ["name", "default", "parameters",
                                                  "description"]
    epochs = next(line for line in _lines(training.stdout) if line.startswith("epochs"))
    assert epochs.split()[:4] == ["epochs", "10", "how", "many"]
    datasets = capas("catalog", "datasets", columns=COLUMNS)
    assert datasets.exit_code == 0 and "builtin:digits" in datasets.stdout
    unknown = capas("catalog", "nope")
    assert unknown.exit_code == 1 and "datasets" in unknown.stderr


def test_the_url_is_the_flag_then_the_environment_then_the_saved_file(tmp_path, monkeypatch):
    (tmp_path / "credentials.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:8000", "api_key": "capas_saved"}))
    for name in ("CAPAS_URL", "CAPAS_HOST", "CAPAS_PORT", "CAPAS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAPAS_DATA_DIR", str(tmp_path))
    assert Client().url == "http://127.0.0.1:8000"
    monkeypatch.setenv("CAPAS_PORT", "9001")
    assert Client().url == "http://127.0.0.1:9001"
    monkeypatch.setenv("CAPAS_URL", "http://api.example:9002")
    assert Client().url == "http://api.example:9002"
    assert Client("http://flag.example:9003").url == "http://flag.example:9003"
    assert Client().http.headers["Authorization"] == "Bearer capas_saved"


def test_a_second_up_on_a_busy_port_fails_before_saying_it_is_up(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "CAPAS_DATA_DIR": str(tmp_path / "data"),
               "CAPAS_PORT": str(port), "COLUMNS": "200"}
        for name in ("CAPAS_DATABASE_URL", "CAPAS_BROKER_URL", "CAPAS_ARTIFACT_URL"):
            env.pop(name, None)
        started = subprocess.run([sys.executable, "-m", "capas", "up"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
    assert started.returncode == 1
    assert "Capas is up" not in started.stdout
    assert started.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: "
                                     "Address already in use"), started.stderr


def test_capas_api_listens_where_capas_port_says(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "CAPAS_DATA_DIR": str(tmp_path / "data"), "CAPAS_PORT": str(port),
               "COLUMNS": "200"}
        env.pop("CAPAS_ARTIFACT_URL", None)
        started = subprocess.run([sys.executable, "-m", "capas", "api"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
    assert started.returncode == 1
    assert started.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), started.stderr


class _EventStream(BaseHTTPRequestHandler):
    """A server whose events use every spelling the format allows: no space after the colon,
    data on several lines, a comment, CRLF line ends; its first connection drops unanswered."""

    answered: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.answered.append(self.headers.get("Last-Event-ID"))
        if len(self.answered) == 1:
            self.close_connection = True
            return  # no answer at all: the client sees the connection drop
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": keep-alive\r\n\r\n"
                         b"id:1\r\nevent:epoch\r\n"
                         b"data:{\"epoch\": 1,\r\ndata: \"loss\": 0.5}\r\n\r\n"
                         b"id: 2\nevent: end\ndata: {}\n\n")

    def log_message(self, *args):
        pass


def test_the_client_reads_any_spelling_of_server_sent_events():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EventStream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Client(f"http://127.0.0.1:{server.server_address[1]}", "capas_x") as client:
            dropped = []
            events = list(client.events("job", last_event_id=7, retry_s=0,
                                        on_retry=dropped.append))
    finally:
        server.shutdown()
    assert events == [(1, "epoch", {"epoch": 1, "loss": 0.5}), (2, "end", {})]
    assert len(dropped) == 1 and _EventStream.answered == ["7", "7"]
