"""Study scale-out: the same study of 16 trials on one worker and on two (cluster mode: PostgreSQL
and Redis, each worker one process training on one thread), and the scale-out efficiency
time₁ / (2 · time₂); then the overhead of a study over the same 16 jobs submitted one by one,
on one worker.

A study's time runs from its submission to its last trial's end, by the server's timestamps; the
jobs' from the first job's submission to the last one's end. Each setup first trains one job per
worker, so that no timed trial pays a process's first job.
Target: efficiency ≥ 0.85 on a 2-core machine.
Run: `.venv/bin/python bench/study_scaling.py [--trials 16] [--epochs 10]`.
"""

import argparse
import copy
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cluster_service  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/13"
ONE_THREAD = {"CAPAS_TORCH_THREADS": "1", "CAPAS_WORKER_PRELOAD": '["pytorch"]'}
FINISHED = ("succeeded", "failed", "cancelled")


def trial_job(epochs: int, seed: int = 0) -> dict:
    """The digits MLP on PyTorch: about a tenth of a second an epoch on one thread."""
    return {"model": {"name": "scaling", "input": {"shape": [64]},
                      "objective": "categorical_crossentropy",
                      "layers": [{"type": "dense", "units": 64, "activation": "relu"},
                                 {"type": "dense", "units": 10, "activation": "softmax"}]},
            "training": {"epochs": epochs, "batch_size": 32, "seed": seed},
            "dataset": "builtin:digits", "framework": "pytorch"}


def study(trials: int, epochs: int) -> dict:
    return {"name": "scaling", "base": trial_job(epochs),
            "space": {"training.seed": {"grid": list(range(trials))}},
            "objective": {"metric": "val_accuracy", "direction": "maximize"},
            # Enough queued that no worker waits for the next trial to be asked.
            "max_concurrent": 4, "publish": "none"}


def wait_jobs(client: httpx.Client, job_ids: list[str]) -> list[dict]:
    while True:
        jobs = [client.get(f"/jobs/{job_id}").json() for job_id in job_ids]
        if all(job["status"] in FINISHED for job in jobs):
            failed = [job for job in jobs if job["status"] != "succeeded"]
            if failed:
                raise RuntimeError(f"bench job {failed[0]['id']}: {failed[0]['failure_reason']}")
            return jobs
        time.sleep(0.5)


def span_s(start: str, jobs: list[dict]) -> float:
    end = max(datetime.fromisoformat(job["finished_at"]) for job in jobs)
    return (end - datetime.fromisoformat(start)).total_seconds()


def warm(client: httpx.Client, workers: int) -> None:
    job_ids = [client.post("/jobs", json=trial_job(2, seed)).json()["id"]
               for seed in range(workers * 2)]
    wait_jobs(client, job_ids)


def parallelism(jobs: list[dict], span: float) -> str:
    """How many trials trained at once on average (their summed run time over the span), and
    how the trials were spread over the workers: the scheduling, apart from how fast the host
    trains each one."""
    busy = sum((datetime.fromisoformat(job["finished_at"])
                - datetime.fromisoformat(job["started_at"])).total_seconds() for job in jobs)
    spread: dict[str, int] = {}
    for job in jobs:
        host = (job["worker"] or "?").split("@")[0]
        spread[host] = spread.get(host, 0) + 1
    return (f"{busy / span:.2f} trials at once, {busy / len(jobs):.2f} s a trial, "
            f"per worker {dict(sorted(spread.items()))}")


def study_seconds(workers: int, trials: int, epochs: int) -> float:
    with cluster_service(PG_ADMIN, REDIS, workers=workers, worker_env=ONE_THREAD) as client:
        warm(client, workers)
        submitted = client.post("/studies", json=study(trials, epochs))
        submitted.raise_for_status()
        study_id = submitted.json()["id"]
        while (shown := client.get(f"/studies/{study_id}").json())["status"] == "running":
            time.sleep(0.5)
        jobs = wait_jobs(client, [trial["job_id"] for trial in shown["trials"]])
        assert len(jobs) == trials, shown
        span = span_s(shown["created_at"], jobs)
        print(f"  {workers} worker(s): {span:.2f} s; {parallelism(jobs, span)}")
        return span


def jobs_seconds(trials: int, epochs: int) -> float:
    """The study's trials as plain jobs, submitted one after another, on one worker."""
    with cluster_service(PG_ADMIN, REDIS, workers=1, worker_env=ONE_THREAD) as client:
        warm(client, 1)
        created = [client.post("/jobs", json=copy.deepcopy(trial_job(epochs, seed))).json()
                   for seed in range(trials)]
        jobs = wait_jobs(client, [job["id"] for job in created])
        span = span_s(created[0]["created_at"], jobs)
        print(f"  jobs one by one: {span:.2f} s; {parallelism(jobs, span)}")
        return span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    one = study_seconds(1, args.trials, args.epochs)
    two = study_seconds(2, args.trials, args.epochs)
    plain = jobs_seconds(args.trials, args.epochs)
    print(f"study of {args.trials} trials × {args.epochs} epochs (cluster mode, one-thread "
          "workers)")
    print(f"  1 worker : {one:7.2f} s")
    print(f"  2 workers: {two:7.2f} s")
    print(f"  scale-out efficiency t1 / (2·t2): {one / (2 * two):.3f}  (target ≥ 0.85)")
    print(f"  the same jobs submitted one by one, 1 worker: {plain:7.2f} s; a study's overhead: "
          f"{(one / plain - 1) * 100:+.1f} %")


if __name__ == "__main__":
    main()
