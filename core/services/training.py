"""Runs one claimed job in a worker: train, record epochs, export, publish a model version."""

import logging
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.artifacts import ArtifactStore
from core.db import session_scope
from core.models import JobStatus
from core.repositories.jobs import JobRepository
from core.services.registry import RegistryService
from core.settings import Settings

log = logging.getLogger(__name__)


class RuntimeExceeded(RuntimeError):
    pass


class JobHooks:
    """Writes each epoch's metrics as it ends; stops the job past its runtime limit."""

    def __init__(self, settings: Settings, job_id: str, max_runtime_s: int, objective: str):
        self.settings, self.job_id = settings, job_id
        self.deadline = time.monotonic() + max_runtime_s
        self.max_runtime_s = max_runtime_s
        self.monitor = "val_mae" if objective == "mse" else "val_accuracy"
        self.best: dict[str, Any] = {}
        self.final: dict[str, Any] = {}
        self.timed_out = False

    def on_epoch_end(self, metrics) -> None:
        row = metrics.as_dict()
        self._update_best(row)
        self.final = {k: v for k, v in row.items() if v is not None}
        with session_scope(self.settings) as session:
            JobRepository(session).record_epoch(self.job_id, metrics.epoch, row, self.best)

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
        return self.timed_out


@dataclass(frozen=True)
class Trained:
    manifest: dict
    directory: Path
    max_abs_diff: float
    device: str
    final_metrics: dict[str, Any]


class TrainingService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = ArtifactStore(settings)

    def run(self, job_id: str, worker: str) -> None:
        with session_scope(self.settings) as session:
            if not JobRepository(session).claim(job_id, worker):
                log.info("job %s is not queued (duplicate delivery or finished); dropped", job_id)
                return
            job = JobRepository(session).get(job_id)
            spec_json, max_runtime_s = job.spec, job.max_runtime_s
        try:
            trained = self._train_and_export(job_id, spec_json, max_runtime_s)
            with session_scope(self.settings) as session:
                jobs = JobRepository(session)
                version = RegistryService(session, self.settings).publish(
                    jobs.get(job_id), trained.manifest, trained.directory, trained.max_abs_diff)
                jobs.finish(job_id, JobStatus.succeeded, device=trained.device,
                            final_metrics=trained.final_metrics, model_version=version)
        except Exception as error:  # every failure ends the job with a reason a student reads
            reason = _reason(error)
            log.warning("job %s failed: %s", job_id, reason, exc_info=not _is_user_error(error))
            with session_scope(self.settings) as session:
                JobRepository(session).finish(job_id, JobStatus.failed, reason=reason)

    def _train_and_export(self, job_id: str, spec_json: dict, max_runtime_s: int) -> "Trained":
        from ml.artifacts import KERAS_FILE, export_max_abs_diff, write_model
        from ml.backends import get_backend
        from ml.datasets import TEST_FRACTION, load_builtin
        from ml.spec import JobSpec, analyze
        from ml.training import prepare, train

        spec = JobSpec.model_validate(spec_json)
        backend = get_backend(spec.framework)
        backend.configure(self.settings.torch_threads)
        dataset = load_builtin(spec.dataset)
        data = prepare(spec, dataset)
        hooks = JobHooks(self.settings, job_id, max_runtime_s, spec.model.objective)
        result = train(spec, data, hooks, device=spec.device)
        if hooks.timed_out:
            raise RuntimeExceeded(f"exceeded max_runtime_s ({max_runtime_s} s)")

        weights = backend.get_weights(result.native)
        directory = self.store.job_model_dir(job_id)
        shutil.rmtree(directory, ignore_errors=True)  # a previous attempt's partial files
        directory.mkdir(parents=True)
        native_files: tuple[str, ...] = ()
        if spec.framework == "tensorflow":
            # Keras's own format, for download only: the service never loads it.
            result.native.model.save(directory / KERAS_FILE)
            native_files = (KERAS_FILE,)
        analysis = analyze(spec.model)
        manifest = write_model(directory, spec, weights, data.preprocessing, {
            "job_id": job_id,
            "model_name": spec.model.name,
            "framework": spec.framework,
            "library_versions": _library_versions(spec.framework),
            "spec": spec.model_dump(mode="json"),
            "input": {"shape": spec.model.input.shape, "dtype": spec.model.input.dtype},
            "output": {"shape": list(analysis.output_shape), "dtype": "float32"},
            "task": spec.model.task,
            "class_names": dataset.class_names if spec.model.task == "classification" else None,
            "dataset": {"id": dataset.id, "sha256": dataset.schema["sha256"],
                        "seed": spec.training.seed,
                        "split": {"test_fraction": TEST_FRACTION,
                                  "validation_split": spec.training.validation_split,
                                  "train": len(data.x_train), "validation": len(data.x_val),
                                  "test": len(data.x_test)}},
            "params": analysis.total_params,
            "device": result.device,
            "metrics": {"final": hooks.final, "best": hooks.best, "test": result.test_metrics},
        }, extra_files=native_files)
        raw_val = data.x_val * data.preprocessing.scale + data.preprocessing.shift
        max_diff = export_max_abs_diff(directory, manifest, raw_val,
                                       backend.predict(result.native, data.x_val))
        return Trained(manifest=manifest, directory=directory, max_abs_diff=max_diff,
                       device=result.device,
                       final_metrics={**hooks.final, **result.test_metrics})


def _is_user_error(error: Exception) -> bool:
    from ml.errors import DataError, SpecError
    from ml.training import Diverged

    return isinstance(error, SpecError | DataError | Diverged | RuntimeExceeded)


def _reason(error: Exception) -> str:
    if _is_user_error(error):
        return str(error)
    return f"internal error ({type(error).__name__}): {error}"


def _library_versions(framework: str) -> dict[str, str]:
    import numpy
    import onnx

    versions = {"python": platform.python_version(), "numpy": numpy.__version__,
                "onnx": onnx.__version__}
    if framework == "pytorch":
        import torch
        versions["torch"] = torch.__version__
    else:
        import keras
        import tensorflow
        versions["tensorflow"], versions["keras"] = tensorflow.__version__, keras.__version__
    return versions
