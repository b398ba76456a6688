"""The README's walkthrough runs as written against `capas up`: the quick start's shell blocks,
the registry's, the datasets' and the users' in one bash session from a folder laid out as the
repository is, then its Python blocks (the client's and the Triton client's)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

VENV = Path(sys.executable).parent.parent
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(section: str, language: str) -> list[str]:
    """The code blocks of one `## ` section of the README, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return [code for lang, code in BLOCK.findall(text[start:end]) if lang == language]


def _on_port(code: str, port: int) -> str:
    """The snippets name the default port; the test's service has one of its own."""
    return code.replace("localhost:8000", f"localhost:{port}").replace(
        "127.0.0.1:8000", f"127.0.0.1:{port}")


def test_the_walkthrough_runs_as_written(service, tmp_path):
    port = int(service["env"]["CAPAS_PORT"])
    # The repository folder as the README's reader has it: the venv, the examples, the data.
    for name, target in ((".venv", VENV), ("examples", ROOT / "examples"),
                         ("capas-data", service["env"]["CAPAS_DATA_DIR"])):
        (tmp_path / name).symlink_to(target)
    quick_start = _blocks("Quick start", "sh")[1:]  # the first one is `make run`: running
    shell = "\n".join(["set -euo pipefail", *quick_start, *_blocks("Datasets", "sh")[:1],
                       *_blocks("Users and keys", "sh")])
    ran = subprocess.run(["bash", "-c", _on_port(shell, port)], cwd=tmp_path,
                         env=service["env"], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert "digits-mlp@staging removed" in ran.stdout
    assert (tmp_path / "digits-mlp-v2.keras").is_file()
    for code in [*_blocks("Quick start", "python"), *_blocks("Registry and serving", "python")]:
        ran = subprocess.run([sys.executable, "-c", _on_port(code, port)],
                             cwd=tmp_path, env=service["env"], capture_output=True, text=True,
                             timeout=600)
        assert ran.returncode == 0, code + ran.stderr[-4000:]


def test_the_sequences_snippet_runs_as_written(service, tmp_path):
    """The model definition's shell block trains the seq2seq example and predicts a class per
    step, with the key the quick start reads."""
    port = int(service["env"]["CAPAS_PORT"])
    for name, target in ((".venv", VENV), ("examples", ROOT / "examples"),
                         ("capas-data", service["env"]["CAPAS_DATA_DIR"])):
        (tmp_path / name).symlink_to(target)
    key = next(line for block in _blocks("Quick start", "sh") for line in block.splitlines()
               if line.startswith("KEY="))
    [sequences] = _blocks("The model definition", "sh")
    shell = "\n".join(["set -euo pipefail", "source .venv/bin/activate", key, sequences])
    ran = subprocess.run(["bash", "-c", _on_port(shell, port)], cwd=tmp_path,
                         env=service["env"], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    answer = json.loads(ran.stdout.splitlines()[-1])
    assert answer["model"] == "reverse-seq2seq" and answer["classes"] == [str(d) for d in range(10)]
    [steps] = answer["predictions"]
    assert len(steps) == 6 and set(steps) <= set(answer["classes"])
    assert np.array(answer["probabilities"]).shape == (1, 6, 10)
