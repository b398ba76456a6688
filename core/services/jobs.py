"""Training jobs: validate and queue (row committed before the message), read, list."""

import json
import uuid
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from core.artifacts import open_store
from core.errors import Conflict, Invalid, NotFound, TooManyRequests
from core.job_options import JobOptions
from core.models import FINISHED_STATUSES, Job, JobEvent, JobMetric, JobStatus, utcnow
from core.repositories.jobs import JobRepository
from core.repositories.models import ModelRepository
from core.repositories.workers import WorkerRepository
from core.services.auth import Principal
from core.services.dispatch import dispatch
from core.services.specs import SpecService
from core.settings import Settings
from ml.artifacts import ArtifactIntegrityError
from ml.datasets import split_record
from ml.evaluation import EVALUATION_FILE
from ml.spec import JobSpec


class ValidJob(NamedTuple):
    spec: JobSpec
    dataset: dict[str, Any]  # the schema of the dataset it trains on


class JobService:
    def __init__(self, session: Session, settings: Settings):
        self.session = session
        self.settings = settings
        self.jobs = JobRepository(session)

    def validate(self, principal: Principal, body: dict[str, Any]) -> ValidJob:
        """The whole validation of DESIGN §3, before anything is stored or queued."""
        inspection = SpecService(self.session, self.settings).inspect(principal, body,
                                                                     require_dataset=True)
        if inspection.issues:
            summary = "; ".join(str(issue) for issue in inspection.issues)
            raise Invalid(f"the job spec is invalid: {summary}", inspection.details())
        spec, dataset = inspection.spec, inspection.dataset
        # What inspecting a job body without issues gives: a whole job and its dataset's schema.
        assert isinstance(spec, JobSpec) and dataset is not None
        return ValidJob(spec, dataset)

    def route(self, device: str) -> str:
        """The queue for a requested device: `auto` takes a GPU when a CUDA worker is alive."""
        if device == "cpu":
            return "cpu"
        since = utcnow() - timedelta(seconds=self.settings.worker_alive_s)
        cuda_alive = "cuda" in WorkerRepository(self.session).alive_queues(since)
        if device == "cuda" and not cuda_alive:
            raise Conflict("device: 'cuda' was requested, but no CUDA worker is running; "
                           "start one with `capas worker -Q cuda`, or use 'auto' or 'cpu'",
                           [{"field": "device", "value": device}])
        return "cuda" if cuda_alive else "cpu"

    def submit(self, principal: Principal, body: dict[str, Any],
               options: JobOptions = JobOptions()) -> tuple[Job, bool]:
        """Queue a job; returns (job, created). A repeated submission_id returns the first."""
        submission_id = options.submission_id
        if submission_id is not None:
            existing = self.jobs.get_by_submission(principal.id, submission_id)
            if existing is not None:
                return existing, False
        active = self.jobs.count_active(principal.id)
        if not principal.is_admin and active >= self.settings.max_concurrent_jobs:
            raise TooManyRequests(
                f"you have {active} queued or running jobs, the limit is "
                f"{self.settings.max_concurrent_jobs}: wait for one to finish or cancel one",
                [{"field": "jobs", "value": active}])
        job = self.prepare(principal, body, options)
        # The row is committed before the message is sent: a lost message leaves a queued
        # row that can be re-sent, never a message without a job.
        self.session.commit()
        dispatch(self.settings, job.id, job.queue)
        return job, True

    def quota_left(self, principal: Principal) -> int | None:
        """How many more jobs the member may have queued or running now (None: no limit)."""
        if principal.is_admin:
            return None
        return max(0, self.settings.max_concurrent_jobs - self.jobs.count_active(principal.id))

    def prepare(self, principal: Principal, body: dict[str, Any], options: JobOptions,
                **link: Any) -> Job:
        """Validate a job and add its queued row, uncommitted; `link` sets more of its columns
        (a study's trial)."""
        spec, dataset = self.validate(principal, body)
        runtime = options.max_runtime_s or self.settings.max_runtime_s
        if runtime > self.settings.max_runtime_s:
            raise Invalid(f"max_runtime_s: {runtime} exceeds the limit of "
                          f"{self.settings.max_runtime_s}",
                          [{"field": "max_runtime_s", "value": runtime}])
        attempts = options.max_attempts or self.settings.max_attempts
        # The name is the submitter's from this transaction on, or the job is refused: only
        # its owner's jobs ever publish versions of a model (an admin's included).
        if ModelRepository(self.session).reserve(spec.model.name, principal.id) != principal.id:
            raise Conflict(f"model.name: '{spec.model.name}' belongs to another user; choose "
                           "another name", [{"field": "model.name", "value": spec.model.name}])
        job = self.jobs.add(Job(
            id=str(uuid.uuid4()), owner_id=principal.id, submission_id=options.submission_id,
            status=JobStatus.queued, model_name=spec.model.name, framework=spec.framework,
            requested_device=spec.device, queue=self.route(spec.device), dataset=spec.dataset,
            dataset_sha256=dataset["sha256"],
            split=split_record(dataset, spec.training.seed, spec.training.validation_split),
            spec=spec.model_dump(mode="json"), max_runtime_s=runtime, max_attempts=attempts,
            name=options.name, note=options.note, **link,
        ))
        return job

    def get(self, principal: Principal, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"job '{job_id}' not found", [{"field": "job_id", "value": job_id}])
        principal.check_owner(job.owner_id)
        return job

    def page(self, principal: Principal, status: JobStatus | None, limit: int,
             offset: int) -> list[Job]:
        return self.jobs.page(principal.owner_filter(), status, limit, offset)

    def timeline(self, job: Job) -> list[JobEvent]:
        return self.jobs.events(job.id, kind="status")

    def events(self, job: Job, after_id: int) -> list[JobEvent]:
        return self.jobs.events(job.id, after_id)

    def cancel(self, principal: Principal, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one within a batch of its next poll."""
        job = self.get(principal, job_id)
        if job.status in FINISHED_STATUSES:
            raise Conflict(f"job '{job_id}' has already {job.status}; nothing to cancel",
                           [{"field": "status", "value": job.status}])
        if not self.jobs.cancel_queued(job_id):
            self.jobs.request_stop(job_id, "cancel")
        self.session.commit()
        self.session.refresh(job)
        return job

    def metrics(self, principal: Principal, job_id: str, after_epoch: int) -> list[JobMetric]:
        return self.jobs.metrics(self.get(principal, job_id).id, after_epoch)

    def evaluation(self, principal: Principal, job_id: str) -> dict[str, Any]:
        """The evaluation report the job's training stored with its model (ml.evaluation)."""
        job = self.get(principal, job_id)
        stored = self._stored_model(job)
        if stored is None or EVALUATION_FILE not in stored[1]["files"]:
            raise NotFound(f"job '{job_id}' has no evaluation report ({job.status}): one is "
                           "made when a job succeeds", [{"field": "job_id", "value": job_id}])
        try:
            path = open_store(self.settings).model_file(*stored, EVALUATION_FILE)
        except ArtifactIntegrityError as error:
            raise Conflict(f"job '{job_id}': {error}") from None
        report: dict[str, Any] = json.loads(path.read_text())
        return report

    def _stored_model(self, job: Job) -> tuple[str, dict[str, Any]] | None:
        """Where the job's model files are stored, and the manifest listing them: in its
        version's card once published, else in the record a trial keeps for publishing."""
        if job.unpublished is not None:
            return job.unpublished["artifact_dir"], job.unpublished["manifest"]
        if job.model_version is None:
            return None
        models = ModelRepository(self.session)
        model = models.get(job.model_name, with_versions=False)
        version = models.get_version(model, job.model_version) if model is not None else None
        return (version.artifact_dir, version.card) if version is not None else None
