"""schemathesis over every operation of the OpenAPI document, against `capas up`, with a
member's key and then an admin's: no server error, no response outside its schema, no status
the document does not state.

Bounded and reproducible: a fixed number of cases per operation, generated deterministically.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.schema

ST = [str(Path(sys.executable).parent / "st")]
CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance",
          "content_type_conformance", "response_headers_conformance")
MAX_EXAMPLES = 25
# One worker: hypothesis parses lambdas' source to describe them, and Python 3.11's parser run in
# two threads at once fails now and then ("AST constructor recursion depth mismatch").
WORKERS = 1


def run_config(accounts: dict) -> str:
    """Path parameters drawn half the time from what exists, so that cases reach past 404."""
    existing = {"name": [accounts["model"]], "version": [1], "fmt": ["onnx", "safetensors"],
                "alias": ["production"], "job_id": [accounts["job_id"]],
                "dataset_id": [accounts["dataset_id"], "builtin:iris"]}
    lines = [line for name, values in existing.items()
             for line in (f"[dictionaries.{name}]", f"values = {json.dumps(values)}")]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}'
              for name in existing]
    # The caller's event stream never ends: its first event (`position`) is the answer to check.
    lines += ["[[operations]]", 'include-path = "/events"', "max-stream-events = 1"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("role", ["member", "admin"])
def test_every_operation_answers_as_documented(accounts, role, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(run_config(accounts))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.schema.hooks",
           "CAPAS_SCHEMA_KEPT_KEYS": f"{accounts['member']['key_id']},"
                                     f"{accounts['admin']['key_id']}"}
    result = subprocess.run(
        [*ST, "--config-file", str(config), "run", f"{accounts['url']}/openapi.json",
         "--header", f"Authorization: Bearer {accounts[role]['key']}",
         "--checks", ",".join(CHECKS), "--max-examples", str(MAX_EXAMPLES),
         "--generation-deterministic", "--workers", str(WORKERS),
         "--request-timeout", "60", "--no-color"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
    output = result.stdout + result.stderr
    summary = output[output.rfind("= SUMMARY ="):] if "= SUMMARY =" in output else output
    assert result.returncode == 0, output[-20000:]
    print(summary)  # the cases run, shown with -rP
    # The run's own key survived it.
    assert accounts[role]["client"].get("/me").status_code == 200, summary
