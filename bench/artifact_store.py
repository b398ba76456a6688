"""The object store's cost: uploads, publishing and `/predict` cold starts, S3 against local.

For each artifact store in one run, a cluster (`capas migrate`, `capas api`, `capas worker`)
on a fresh PostgreSQL database: with the local store the processes share one data dir, as
cluster mode then requires; with the S3 store (SeaweedFS's `weed server -s3` on loopback,
started here) each has a data dir of its own. Measured, in this order:
  - upload: `POST /datasets` of a CSV (ROWS rows of COLUMNS numbers, new content each time:
    a store keeps one file per content), timed by the client;
  - publish: a trained model's end of job, from its last epoch's metrics to the job's finish
    (the ONNX export, its parity check, storing the files, registering the version), from the
    server's own timestamps; the wide MLP of bench/predict.py (4M weights, 33 MB of files);
  - `/predict` cold start: the first `POST /models/{name}/predict` answered by a new `capas api`
    process (with the object store, on an empty data dir: the model comes from the bucket),
    timed by the client; then a warm one on the same process, for scale.
It prints the median of each for each store, and the ratios S3 / local.
Run: `.venv/bin/python bench/artifact_store.py [--repeats N]`.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.common import CAPAS, ROOT, _free_port, _stop, _wait_healthy, run_job  # noqa: E402
from bench.predict import model_specs  # noqa: E402
from core.db import session_scope  # noqa: E402
from core.models import Job, JobMetric  # noqa: E402
from core.settings import Settings  # noqa: E402
from ml.datasets import load_builtin  # noqa: E402
from tests.conftest import S3Server, postgres_database, seaweedfs  # noqa: E402

# A Redis database that no test session takes (they take 1 to 15).
REDIS = "redis://127.0.0.1:6379/0"
ROWS, COLUMNS = 20_000, 32


@dataclass
class Figures:
    upload_s: list[float] = field(default_factory=list)
    publish_s: list[float] = field(default_factory=list)
    cold_predict_s: list[float] = field(default_factory=list)
    warm_predict_s: list[float] = field(default_factory=list)


def dataset_csv(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, COLUMNS)).round(5)
    y = (x[:, 0] > 0).astype(int)
    out = io.StringIO()
    out.write(",".join([*(f"f{i}" for i in range(COLUMNS)), "label"]) + "\n")
    np.savetxt(out, np.column_stack([x, y]), delimiter=",", fmt=["%.5f"] * COLUMNS + ["%d"])
    return out.getvalue().encode()


@dataclass
class Cluster:
    env: dict[str, str]  # the shared part of every process's environment
    database_url: str
    tmp: Path
    object_store: bool
    processes: list[subprocess.Popen] = field(default_factory=list)

    def host_env(self) -> dict[str, str]:
        """A process's environment: a data dir of its own with an object store, else the
        shared one."""
        if not self.object_store:
            return self.env
        return {**self.env, "CAPAS_DATA_DIR": tempfile.mkdtemp(prefix="host-", dir=self.tmp)}

    def start(self, *command: str) -> subprocess.Popen:
        self.processes.append(subprocess.Popen([CAPAS, *command], cwd=ROOT, env=self.host_env(),
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        return self.processes[-1]

    @contextmanager
    def api(self) -> Iterator[str]:
        port = _free_port()
        process = self.start("api", "--host", "127.0.0.1", "--port", str(port),
                             "--no-access-log")
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url)
            yield url
        finally:
            _stop(process)


@contextmanager
def cluster(s3: S3Server | None) -> Iterator[tuple[Cluster, str]]:
    """A migrated database, a worker and the admin key."""
    with postgres_database() as database_url, \
            tempfile.TemporaryDirectory(prefix="capas-bench-") as tmp:
        env = {**os.environ, "CAPAS_DATA_DIR": f"{tmp}/data", "CAPAS_BROKER_URL": REDIS,
               "CAPAS_DATABASE_URL": database_url, "CAPAS_WORKER_PRELOAD": '["pytorch"]'}
        if s3 is not None:
            env.update({"CAPAS_ARTIFACT_URL": f"s3://{s3.bucket}/bench",
                        "CAPAS_S3_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": s3.access_key,
                        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                        "AWS_DEFAULT_REGION": "us-east-1"})
        running = Cluster(env, database_url, Path(tmp), s3 is not None)
        subprocess.run([CAPAS, "migrate"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        key = json.loads(Path(f"{tmp}/data/credentials.json").read_text())["api_key"]
        running.start("worker", "-Q", "cpu")
        try:
            yield running, key
        finally:
            for process in running.processes:
                _stop(process)


def publish_seconds(database_url: str, job_id: str) -> float:
    """From the job's last epoch recorded to its finish, on the server's clock."""
    with session_scope(Settings(database_url=database_url)) as session:
        last_epoch = session.scalar(select(func.max(JobMetric.recorded_at))
                                    .where(JobMetric.job_id == job_id))
        finished = session.scalar(select(Job.finished_at).where(Job.id == job_id))
    return (finished - last_epoch).total_seconds()


def timed(post, path: str, **request) -> float:
    """Seconds to an answer to `POST path`, which must be a success."""
    started = time.perf_counter()
    response = post(path, **request)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def measure(s3: S3Server | None, repeats: int) -> Figures:
    figures = Figures()
    wide = model_specs()["wide"]
    instance = {"instances": load_builtin("builtin:digits").x[:1].tolist()}
    with cluster(s3) as (running, key):
        headers = {"Authorization": f"Bearer {key}"}
        with running.api() as url, httpx.Client(base_url=url, headers=headers,
                                                timeout=300) as client:
            for seed in range(repeats):
                csv = dataset_csv(seed)
                figures.upload_s.append(timed(client.post, "/datasets", data={"target": "label"},
                                              files={"file": ("bench.csv", csv)}))
            names = []
            for index in range(repeats):
                body = {**wide, "model": {**wide["model"], "name": f"bench-store-{index}"}}
                job = run_job(client, body)
                figures.publish_s.append(publish_seconds(running.database_url, job["id"]))
                names.append(body["model"]["name"])
        for name in names:
            with running.api() as url, httpx.Client(base_url=url, headers=headers,
                                                    timeout=300) as client:
                predict = f"/models/{name}/predict"
                figures.cold_predict_s.append(timed(client.post, predict, json=instance))
                figures.warm_predict_s.append(timed(client.post, predict, json=instance))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="capas-bench-s3-") as folder, \
            seaweedfs(Path(folder)) as s3:
        local, remote = measure(None, args.repeats), measure(s3, args.repeats)
    print(f"medians of {args.repeats} (ms); upload: a {ROWS}×{COLUMNS} CSV "
          f"({len(dataset_csv(0)) / 2**20:.1f} MB); publish and /predict: the wide MLP")
    print(f"{'':<22} {'local':>9} {'S3':>9} {'S3/local':>9}")
    for label, attribute in (("upload", "upload_s"), ("publish", "publish_s"),
                             ("/predict cold start", "cold_predict_s"),
                             ("/predict warm", "warm_predict_s")):
        a = statistics.median(getattr(local, attribute)) * 1000
        b = statistics.median(getattr(remote, attribute)) * 1000
        print(f"{label:<22} {a:>9.1f} {b:>9.1f} {b / a:>8.2f}×")


if __name__ == "__main__":
    main()
