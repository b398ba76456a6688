"""The end-to-end tiers' service: `capas up` as a subprocess on a free port, in a fresh data dir."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port

# The installed script; where the project runs uninstalled (a GPU host), the same app by module.
_SCRIPT = Path(sys.executable).parent / "capas"
CAPAS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "capas"]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    port = free_port()
    env = {**os.environ, "CAPAS_DATA_DIR": str(data_dir), "CAPAS_PORT": str(port)}
    for name in ("CAPAS_DATABASE_URL", "CAPAS_BROKER_URL", "CAPAS_API_KEY", "CAPAS_URL"):
        env.pop(name, None)
    log = (data_dir.parent / "up.log").open("w")
    process = subprocess.Popen([*CAPAS, "up"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, (data_dir.parent / "up.log").read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    credentials = json.loads((data_dir / "credentials.json").read_text())
    yield {"process": process, "url": url, "env": env, "key": credentials["api_key"],
           "log": data_dir.parent / "up.log"}
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(60)
