"""The README's Studies section runs as written against `capas up`: its shell block (a study
watched to its end, another started and cancelled, the trials' CSV) and its Python block."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.test_readme_snippets import VENV, _blocks, _on_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# What the quick start, run before this section, leaves the reader with.
KEY = ("KEY=$(python -c \"import json; "
       "print(json.load(open('capas-data/credentials.json'))['api_key'])\")")


def test_the_studies_section_runs_as_written(service, tmp_path):
    port = int(service["env"]["CAPAS_PORT"])
    for name, target in ((".venv", VENV), ("examples", ROOT / "examples"),
                         ("capas-data", service["env"]["CAPAS_DATA_DIR"])):
        (tmp_path / name).symlink_to(target)
    shell = "\n".join(["set -euo pipefail", "source .venv/bin/activate", KEY,
                       *_blocks("Studies", "sh")])
    ran = subprocess.run(["bash", "-c", _on_port(shell, port)], cwd=tmp_path,
                         env=service["env"], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert "finished: best trial" in ran.stdout
    assert "cancelled" in ran.stdout
    assert "number,job_id,status,value,model,training.optimizer,framework" in ran.stdout
    (code,) = _blocks("Studies", "python")
    ran = subprocess.run([sys.executable, "-c", _on_port(code, port)], cwd=tmp_path,
                         env=service["env"], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, code + ran.stderr[-4000:]
    assert "'model_version': 1" in ran.stdout
