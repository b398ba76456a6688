"""Runs one claimed job in a worker: train, record epochs, export, publish a model version."""

import json
import logging
import os
import platform
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy.exc import OperationalError

from core.artifacts import StoreUnavailable, open_store
from core.db import session_scope
from core.errors import Conflict
from core.models import Job, JobStatus
from core.repositories.jobs import JobRepository
from core.services.datasets import DatasetService
from core.services.dispatch import dispatch
from core.services.registry import RegistryService
from core.services.studies import StudyService, advance_study
from core.settings import Settings
from ml.catalog import OBJECTIVES
from ml.coach import coach
from ml.epochs import METRIC_FIELDS, EpochMetrics

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Beats for a claimed job from claim to end, whatever the job is doing (importing a
    framework, preparing data, exporting), and picks up its stop request on each beat:
    "cancel", "release" (the worker is shutting down) or "lost" (another worker holds it)."""

    def __init__(self, settings: Settings, job_id: str, worker: str):
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.settings, self.job_id, self.worker = settings, job_id, worker
        self.stop_reason: str | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.wait(self.settings.job_poll_interval_s):
            try:
                with session_scope(self.settings) as session:
                    self.stop_reason = JobRepository(session).beat(self.job_id, self.worker)
            except OperationalError:
                log.warning("heartbeat of job %s missed: database unreachable", self.job_id)
            if self.stop_reason is not None:
                return

    def __enter__(self) -> "Heartbeat":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finished.set()
        self.join()


class EpochWriter(threading.Thread):
    """Writes finished epochs to SQL behind the training loop, in order.

    A commit can take milliseconds (PostgreSQL waits for its log to reach the disk), and the
    SQL layer's Python holds the interpreter meanwhile: as long as a small model's epoch, or
    a good part of it. So training goes on while rows are written, and the epochs that end
    within `COALESCE_S` of each other are written in one transaction. `flush()` writes what
    is pending at once and waits for it; it is called before each checkpoint (a checkpoint
    never holds an epoch whose row is not written) and before the job ends.
    """

    COALESCE_S = 0.2  # live progress lags at most this much

    def __init__(self, settings: Settings, job_id: str):
        super().__init__(name=f"epochs-{job_id}", daemon=True)
        self.settings, self.job_id = settings, job_id
        # (epoch, row, best metrics) of each epoch, then None: the writer ends.
        self.rows: queue.Queue[tuple[int, dict[str, Any], dict[str, Any]] | None] = queue.Queue()
        self.hurry = threading.Event()
        self.error: Exception | None = None

    def put(self, epoch: int, row: dict[str, Any], best: dict[str, Any]) -> None:
        self._raise()
        self.rows.put((epoch, row, dict(best)))

    def run(self) -> None:
        closing = False
        while not closing:
            pending = [self.rows.get()]
            self.hurry.wait(self.COALESCE_S)  # let the epochs that follow closely join in
            while not self.rows.empty():
                pending.append(self.rows.get_nowait())
            closing = pending[-1] is None
            try:
                self._write([item for item in pending if item is not None])
            finally:
                for _ in pending:
                    self.rows.task_done()

    def _write(self, items: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        if not items or self.error is not None:
            return
        try:
            with session_scope(self.settings) as session:
                JobRepository(session).record_epochs(
                    self.job_id, [(epoch, row) for epoch, row, _ in items], items[-1][2])
        except Exception as error:  # surfaced in the training thread by _raise
            self.error = error

    def flush(self) -> None:
        """Write every epoch given so far now; raise what writing one raised."""
        self.settle()
        self._raise()

    def settle(self) -> None:
        """Wait for the rows still queued, whatever happened (the job is ending anyway)."""
        self.hurry.set()
        self.rows.join()
        self.hurry.clear()

    def __enter__(self) -> "EpochWriter":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hurry.set()
        self.rows.put(None)
        self.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


class JobHooks:
    """Records each epoch as it ends; between batches, says whether to stop: on the
    heartbeat's stop request (seen within one poll interval, at no cost per batch), past
    the job's runtime limit ("timeout"), or when its study's pruner says so after an epoch
    ("prune")."""

    def __init__(self, settings: Settings, job_id: str, heartbeat: Heartbeat,
                 writer: EpochWriter, max_runtime_s: int, task: str,
                 pruner: Callable[[int], str | None] | None = None):
        self.settings, self.job_id, self.heartbeat = settings, job_id, heartbeat
        self.writer, self.pruner = writer, pruner
        self.pruned_reason: str | None = None
        self.deadline = time.monotonic() + max_runtime_s
        self.monitor = "val_accuracy" if task == "classification" else "val_mae"
        self.best: dict[str, Any] = {}
        self.final: dict[str, Any] = {}
        self.timed_out = False

    @property
    def stop_reason(self) -> str | None:
        if self.pruned_reason is not None:
            return "prune"
        return "timeout" if self.timed_out else self.heartbeat.stop_reason

    def replay(self, rows: list[dict[str, Any]]) -> None:
        """Best and final metrics of the epochs an earlier attempt already recorded."""
        for row in rows:
            self._update_best(row)
            self.final = {k: v for k, v in row.items() if v is not None}

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        row = metrics.as_dict()
        self.replay([row])
        self.writer.put(metrics.epoch, row, self.best)
        if self.pruner is not None:
            self.writer.flush()  # the pruner compares this epoch's row with the other trials'
            self.pruned_reason = self.pruner(metrics.epoch)

    def _update_best(self, row: dict[str, Any]) -> None:
        if row.get("val_loss") is not None and row["val_loss"] < self.best.get("val_loss", np.inf):
            self.best["val_loss"], self.best["val_loss_epoch"] = row["val_loss"], row["epoch"]
        value = row.get(self.monitor)
        if value is not None:
            better = (value > self.best.get(self.monitor, -np.inf) if self.monitor ==
                      "val_accuracy" else value < self.best.get(self.monitor, np.inf))
            if better:
                self.best[self.monitor], self.best[f"{self.monitor}_epoch"] = value, row["epoch"]

    def should_stop(self) -> bool:
        self.timed_out = self.timed_out or time.monotonic() > self.deadline
        return self.stop_reason is not None


@dataclass(frozen=True)
class Trained:
    manifest: dict[str, Any]
    artifact_dir: str  # where the artifact store holds the model's files
    max_abs_diff: float
    device: str
    final_metrics: dict[str, Any]
    class_counts: list[int] | None  # the dataset's, for the coach's chance level


class TrainingService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = open_store(settings)

    def run(self, job_id: str, worker: str) -> None:
        with session_scope(self.settings) as session:
            jobs = JobRepository(session)
            if not jobs.claim(job_id, worker):
                log.info("job %s is not queued (duplicate delivery or finished); dropped", job_id)
                return
            job = jobs.get(job_id)
            assert job is not None  # claimed just above
            history = [{k: getattr(row, k) for k in ("epoch", *METRIC_FIELDS)}
                       for row in jobs.metrics(job_id)]
        with (Heartbeat(self.settings, job_id, worker) as heartbeat,
              EpochWriter(self.settings, job_id) as writer):
            hooks = JobHooks(self.settings, job_id, heartbeat, writer, job.max_runtime_s,
                             OBJECTIVES[job.spec["model"]["objective"]].task,
                             self._pruner(job))
            self._run_claimed(job, worker, hooks, history)
        if job.study_id is not None:  # its row is final: the study starts its next trials
            advance_study(self.settings, job.study_id)

    def _pruner(self, job: Job) -> Callable[[int], str | None] | None:
        """A trial's pruning after each epoch, asked of its study in a session of its own
        (none for a job that is no trial, or whose study prunes nothing)."""
        if job.study_id is None:
            return None
        with session_scope(self.settings) as session:
            if not StudyService(session, self.settings).prunes(job.study_id):
                return None

        def prune(epoch: int) -> str | None:
            with session_scope(self.settings) as session:
                return StudyService(session, self.settings).prune_reason(job, epoch)
        return prune

    def _run_claimed(self, job: Job, worker: str, hooks: JobHooks,
                     history: list[dict[str, Any]]) -> None:
        job_id = job.id
        try:
            trained = self._train_and_export(job, hooks, history)
            hooks.writer.flush()  # every epoch recorded before the job's end is
        except (OperationalError, StoreUnavailable) as error:  # a service hiccupped: try again
            hooks.writer.settle()
            cause = error.orig if isinstance(error, OperationalError) else None
            transient = f"a transient error: {cause or error}"
            if job.attempt < job.max_attempts:
                log.warning("job %s: re-queued after %s", job_id, transient)
                self._requeue(job_id, job.queue, worker, f"re-queued after {transient}")
                return
            # A service that stays down must not retrain the job from its start forever.
            log.warning("job %s failed: %s, attempt %d of %d", job_id, transient, job.attempt,
                        job.max_attempts)
            with session_scope(self.settings) as session:
                JobRepository(session).finish(
                    job_id, JobStatus.failed, worker=worker,
                    reason=f"{transient}; gave up after {job.attempt} attempts")
            return
        except Exception as error:  # every failure ends the job with a reason a student reads
            hooks.writer.settle()
            reason = _reason(error)
            log.warning("job %s failed: %s", job_id, reason, exc_info=not _is_user_error(error))
            with session_scope(self.settings) as session:
                JobRepository(session).finish(job_id, JobStatus.failed, worker=worker,
                                              reason=reason)
            return
        self._conclude(job, worker, hooks, trained)

    def _conclude(self, job: Job, worker: str, hooks: JobHooks,
                  trained: "Trained | None") -> None:
        reason = hooks.stop_reason
        if reason == "release" and trained is not None:
            reason = None  # trained in full before its worker was asked to stop: publish it
        if reason == "lost":
            log.warning("job %s was re-queued while this worker held it; dropped", job.id)
        elif reason == "release":
            # Not sent from here: this worker would take it again. Its main process sends it
            # once it has stopped taking jobs (workers.celery_app); the reconcilers, if it dies.
            with session_scope(self.settings) as session:
                JobRepository(session).requeue(job.id, f"worker {worker} shutting down; "
                                                       "resumes from its last epoch checkpoint",
                                                worker=worker)
        else:
            try:
                self._finish(job, worker, reason, trained, hooks.pruned_reason)
            except Conflict as refused:  # its model's name is another member's
                with session_scope(self.settings) as session:
                    JobRepository(session).finish(job.id, JobStatus.failed, worker=worker,
                                                  reason=refused.message)
        if reason not in ("release", "lost"):
            self.store.drop_checkpoint(job.id)

    def _finish(self, job: Job, worker: str, reason: str | None,
                trained: "Trained | None", pruned_reason: str | None = None) -> None:
        """The job's end as the training left it: cancelled, timed out, pruned, or published
        (a trial whose study publishes later keeps what publishing needs)."""
        with session_scope(self.settings) as session:
            jobs = JobRepository(session)
            if reason == "prune":
                jobs.finish(job.id, JobStatus.cancelled, worker=worker, reason=pruned_reason,
                            pruned_reason=pruned_reason)
            elif reason == "cancel":
                jobs.finish(job.id, JobStatus.cancelled, worker=worker,
                            reason="cancelled by user")
            elif reason == "timeout":
                jobs.finish(job.id, JobStatus.failed, worker=worker,
                            reason=f"exceeded max_runtime_s ({job.max_runtime_s} s)")
            else:
                assert trained is not None  # only a training that was stopped leaves none
                flags = coach([{k: getattr(row, k) for k in ("epoch", *METRIC_FIELDS)}
                               for row in jobs.metrics(job.id)], trained.class_counts)
                # The card carries the flags: they decide whether the version serves by default.
                manifest = {**trained.manifest, "coach": flags}
                if not job.publish:
                    jobs.finish(job.id, JobStatus.succeeded, worker=worker,
                                device=trained.device, final_metrics=trained.final_metrics,
                                coach=flags,
                                unpublished={"manifest": manifest,
                                             "artifact_dir": trained.artifact_dir,
                                             "max_abs_diff": trained.max_abs_diff})
                elif jobs.finish(job.id, JobStatus.succeeded, worker=worker,
                               device=trained.device, final_metrics=trained.final_metrics,
                               coach=flags):
                    # Same transaction: never succeeded without its version, nor twice.
                    version = RegistryService(session, self.settings).publish(
                        job, manifest, trained.artifact_dir, trained.max_abs_diff)
                    jobs.set_model_version(job.id, version)

    def _requeue(self, job_id: str, queue: str, worker: str, reason: str) -> None:
        with session_scope(self.settings) as session:
            requeued = JobRepository(session).requeue(job_id, reason, worker=worker)
        if requeued:
            dispatch(self.settings, job_id, queue)

    def _train_and_export(self, job: Job, hooks: JobHooks,
                          history: list[dict[str, Any]]) -> "Trained | None":
        from ml.artifacts import export_max_abs_diff, write_model
        from ml.backends import get_backend
        from ml.evaluation import EVALUATION_FILE, evaluate, summary
        from ml.spec import JobSpec, analyze
        from ml.training import Checkpoints, prepare, train

        spec = JobSpec.model_validate(job.spec)
        backend = get_backend(spec.framework)
        backend.configure(self.settings.torch_threads)
        with session_scope(self.settings) as session:
            dataset = DatasetService(session, self.settings).load(job.dataset, job.dataset_sha256)
        data = prepare(spec, dataset)
        checkpoint_dir = self.store.job_checkpoint_dir(job.id)
        # A job that ran elsewhere resumes from the checkpoint that host stored.
        self.store.restore_checkpoint(job.id, Checkpoints(checkpoint_dir).write)
        checkpoints = Checkpoints(checkpoint_dir, self.settings.checkpoint_min_interval_s,
                                  before_write=hooks.writer.flush,
                                  after_write=partial(self.store.save_checkpoint, job.id))
        # Epochs past the checkpoint are trained again: their earlier values count for nothing.
        hooks.replay([row for row in history if row["epoch"] <= checkpoints.epoch])
        result = train(spec, data, hooks, device=job.queue, checkpoints=checkpoints,
                       history=[EpochMetrics(**row) for row in history])
        if hooks.stop_reason is not None:
            return None

        weights = backend.get_weights(result.native)
        directory = self.store.job_model_dir(job.id)
        shutil.rmtree(directory, ignore_errors=True)  # a previous attempt's partial files
        directory.mkdir(parents=True)
        native_files = backend.save_native(result.native, directory, data.preprocessing)
        evaluation = evaluate(spec.model.objective, result.test_outputs, data.y_test,
                              dataset.class_names, dataset.x[data.test_index], data.test_index)
        (directory / EVALUATION_FILE).write_text(json.dumps(evaluation))
        analysis = analyze(spec.model)
        manifest = write_model(directory, spec, weights, data.preprocessing, {
            "job_id": job.id,
            "model_name": spec.model.name,
            "framework": spec.framework,
            "library_versions": {**_library_versions(), **backend.library_versions()},
            "spec": spec.model_dump(mode="json"),
            "input": {"shape": spec.model.input.shape, "dtype": spec.model.input.dtype},
            "output": {"shape": list(analysis.output_shape), "dtype": "float32"},
            "task": spec.model.task,
            "class_names": dataset.class_names if spec.model.task == "classification" else None,
            "dataset": {"id": dataset.id, "sha256": dataset.schema["sha256"],
                        "seed": spec.training.seed, "split": job.split},
            "params": analysis.total_params,
            "device": result.device,
            # Which process trained it, with how many threads: a worker keeps its framework
            # (and process) from job to job, and trains with the host's thread count.
            "runtime": {"pid": os.getpid(), "threads": backend.threads()},
            "metrics": {"final": hooks.final, "best": hooks.best, "test": result.test_metrics},
            "evaluation": {**summary(evaluation), "file": EVALUATION_FILE},
        }, extra_files=(*native_files, EVALUATION_FILE))
        raw_val = data.x_val * data.preprocessing.scale + data.preprocessing.shift
        max_diff = export_max_abs_diff(directory, manifest, raw_val,
                                       backend.predict(result.native, data.x_val))
        return Trained(manifest=manifest, artifact_dir=self.store.store_model(job.id),
                       max_abs_diff=max_diff,
                       device=result.device,
                       final_metrics={**hooks.final, **result.test_metrics},
                       class_counts=dataset.schema["class_counts"])


def _is_user_error(error: Exception) -> bool:
    from ml.errors import DataError, SpecError
    from ml.training import Diverged

    return isinstance(error, SpecError | DataError | Diverged)


def _reason(error: Exception) -> str:
    if _is_user_error(error):
        return str(error)
    return f"internal error ({type(error).__name__}): {error}"


def _library_versions() -> dict[str, str]:
    import numpy
    import onnx

    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "onnx": onnx.__version__}
