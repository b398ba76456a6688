"""Queue latency: submit → running with a warm worker, and what metrics writing costs.

For each mode (embedded: SQLite + filesystem broker; cluster: PostgreSQL + Redis), one tiny job
warms the worker, then 50 jobs are submitted one at a time, each to an idle worker; the latency
is the server's `started_at − created_at` (committed → claimed by the worker). Then the cost of
recording one epoch (the upsert, progress and event, one transaction) is timed on the same
database and compared with an epoch of the MLP example.
Target: p50 ≤ 50 ms. Run: `.venv/bin/python bench/queue_latency.py [--jobs N]`.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    cluster_service,
    embedded_service,
    job_seconds,
    percentile,
    run_job,
)

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/14"


def tiny_job() -> dict:
    return {"model": {"name": "latency", "input": {"shape": [4]},
                      "objective": "categorical_crossentropy",
                      "layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
            "training": {"epochs": 1}, "dataset": "builtin:iris", "framework": "pytorch"}


def latencies(client, jobs: int) -> list[float]:
    run_job(client, tiny_job())  # the worker imports torch once, then keeps it
    return [job_seconds(run_job(client, tiny_job()), until="started_at") * 1000
            for _ in range(jobs)]


def epoch_write_ms(database_url: str | None, repeats: int = 200) -> tuple[float, float]:
    """Median milliseconds of recording one epoch: the SQL write itself (done by the writer
    thread), and what the training loop waits for (handing the row to that thread)."""
    from core.db import session_scope
    from core.migrate import upgrade
    from core.models import Job
    from core.repositories.jobs import JobRepository
    from core.services.auth import AuthService
    from core.services.training import EpochWriter
    from core.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=tmp, database_url=database_url, broker_url=None)
        upgrade(settings)
        job_id = str(uuid.uuid4())
        with session_scope(settings) as session:
            user, _ = AuthService(session).create_user(f"bench-{job_id}", "member")
            JobRepository(session).add(Job(
                id=job_id, owner_id=user.id, status="running", model_name="m",
                framework="pytorch", requested_device="cpu", queue="cpu", dataset="d",
                spec={}, max_runtime_s=60))
        row = {"loss": 0.5, "val_loss": 0.6, "accuracy": 0.9, "val_accuracy": 0.8,
               "learning_rate": 0.001, "duration_s": 0.03, "samples_per_s": 30000.0}
        writes = []
        for epoch in range(1, repeats + 1):
            started = time.perf_counter()
            with session_scope(settings) as session:
                JobRepository(session).record_epoch(job_id, epoch, row, {"val_loss": 0.6})
            writes.append((time.perf_counter() - started) * 1000)
        handoffs = []
        with EpochWriter(settings, job_id) as writer:
            for epoch in range(1, repeats + 1):
                started = time.perf_counter()
                writer.put(epoch, row, {"val_loss": 0.6})
                handoffs.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)  # an epoch's worth of training
            writer.flush()
        return statistics.median(writes), statistics.median(handoffs)


def mlp_epoch_ms(client) -> float:
    body = json.loads((ROOT / "examples" / "mlp-digits.json").read_text())
    job = run_job(client, body)
    rows = client.get(f"/jobs/{job['id']}/metrics").json()
    return statistics.median(row["duration_s"] for row in rows) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    results = []
    for mode, service, database in (
            ("embedded", embedded_service, None),
            ("cluster", lambda: cluster_service(PG_ADMIN, REDIS), PG_ADMIN)):
        with service() as client:
            values = latencies(client, args.jobs)
            epoch_ms = mlp_epoch_ms(client)
        write_ms, handoff_ms = epoch_write_ms(database)
        results.append((mode, values, write_ms, handoff_ms, epoch_ms))
    print(f"submit → running over {args.jobs} jobs, warm worker (ms); recording an epoch: the "
          "SQL write (in the writer thread) and what training waits for, against an epoch")
    print(f"{'mode':<9} {'p50':>7} {'p99':>7} {'max':>7}   {'SQL write':>9}   "
          f"{'training waits':>14}   {'MLP epoch':>9}   share")
    for mode, values, write_ms, handoff_ms, epoch_ms in results:
        print(f"{mode:<9} {percentile(values, 50):>7.1f} {percentile(values, 99):>7.1f} "
              f"{max(values):>7.1f}   {write_ms:>6.2f} ms   {handoff_ms:>11.3f} ms   "
              f"{epoch_ms:>6.1f} ms   {handoff_ms / epoch_ms:>5.2%}")


if __name__ == "__main__":
    main()
