"""The README's Evaluation section runs as written against `capas up`: a job trained to its
end, its report as tables and as JSON, then read from Python."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.test_readme_snippets import VENV, _blocks, _on_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_the_evaluation_section_runs_as_written(service, tmp_path):
    port = int(service["env"]["CAPAS_PORT"])
    for name, target in ((".venv", VENV), ("examples", ROOT / "examples"),
                         ("capas-data", service["env"]["CAPAS_DATA_DIR"])):
        (tmp_path / name).symlink_to(target)
    shell = "\n".join(["set -euo pipefail", "source .venv/bin/activate",
                       *_blocks("Evaluation", "sh")])
    ran = subprocess.run(["bash", "-c", _on_port(shell, port)], cwd=tmp_path,
                         env=service["env"], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert "confusion matrix (rows: true class, columns: predicted)" in ran.stdout
    assert "iris-rbf v1 on builtin:iris (test): classification, 30 test samples" in ran.stdout
    start = ran.stdout.index("\n{") + 1  # the --json answer
    report = json.loads(ran.stdout[start:ran.stdout.index("\n}", start) + 2])
    assert report["classes"] == ["setosa", "versicolor", "virginica"]
    assert sum(map(sum, report["confusion_matrix"])) == report["samples"] == 30
    (code,) = _blocks("Evaluation", "python")
    ran = subprocess.run([sys.executable, "-c", _on_port(code, port)], cwd=tmp_path,
                         env=service["env"], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, code + ran.stderr[-4000:]
    assert ran.stdout.splitlines()[1].split()[0] == "setosa"
    assert ran.stdout.splitlines()[-1] == "test True"
