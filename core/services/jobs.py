"""Training jobs: validate and queue (row committed before the message), read, list."""

import uuid
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from core.errors import Conflict, Invalid, NotFound
from core.models import Job, JobEvent, JobMetric, JobStatus
from core.queue import enqueue_training
from core.repositories.jobs import JobRepository
from core.repositories.models import ModelRepository
from core.services.auth import Principal
from core.services.datasets import DatasetService
from core.settings import Settings
from ml.datasets import split_record
from ml.errors import SpecError
from ml.spec import JobSpec, analyze, check_dataset_fit, parse_job_spec


class ValidJob(NamedTuple):
    spec: JobSpec
    dataset: dict[str, Any]  # the schema of the dataset it trains on


def spec_error_details(error: SpecError) -> list[dict[str, Any]]:
    return [{"field": issue.path, "message": issue.message, "value": issue.value}
            for issue in error.issues]


class JobService:
    def __init__(self, session: Session, settings: Settings):
        self.session = session
        self.settings = settings
        self.jobs = JobRepository(session)

    def validate(self, principal: Principal, body: dict[str, Any]) -> ValidJob:
        """The whole validation of DESIGN §3, before anything is stored or queued."""
        try:
            spec = parse_job_spec(body)
            analysis = analyze(spec.model, self.settings.max_params)
            dataset = DatasetService(self.session, self.settings).schema(principal, spec.dataset)
            check_dataset_fit(spec, dataset, analysis)
        except SpecError as error:
            raise Invalid(f"the job spec is invalid: {error}", spec_error_details(error)) from None
        if spec.training.epochs > self.settings.max_epochs:
            raise Invalid(f"training.epochs: {spec.training.epochs} exceeds the limit of "
                          f"{self.settings.max_epochs}",
                          [{"field": "training.epochs", "value": spec.training.epochs}])
        if spec.device == "cuda":
            # Routing to CUDA workers arrives with worker device announcements (issue 5).
            raise Conflict("device 'cuda' requested but no CUDA worker is available",
                           [{"field": "device", "value": "cuda"}])
        return ValidJob(spec, dataset)

    def submit(self, principal: Principal, body: dict[str, Any], submission_id: str | None,
               max_runtime_s: int | None) -> tuple[Job, bool]:
        """Queue a job; returns (job, created). A repeated submission_id returns the first."""
        if submission_id is not None:
            existing = self.jobs.get_by_submission(principal.id, submission_id)
            if existing is not None:
                return existing, False
        spec, dataset = self.validate(principal, body)
        owner = ModelRepository(self.session).get(spec.model.name)
        if owner is not None and owner.owner_id != principal.id and not principal.is_admin:
            raise Conflict(f"model name '{spec.model.name}' belongs to another user",
                           [{"field": "model.name", "value": spec.model.name}])
        runtime = max_runtime_s or self.settings.max_runtime_s
        if runtime > self.settings.max_runtime_s:
            raise Invalid(f"max_runtime_s: {runtime} exceeds the limit of "
                          f"{self.settings.max_runtime_s}",
                          [{"field": "max_runtime_s", "value": runtime}])
        job = self.jobs.add(Job(
            id=str(uuid.uuid4()), owner_id=principal.id, submission_id=submission_id,
            status=JobStatus.queued, model_name=spec.model.name, framework=spec.framework,
            requested_device=spec.device, queue="cpu", dataset=spec.dataset,
            dataset_sha256=dataset["sha256"],
            split=split_record(dataset, spec.training.seed, spec.training.validation_split),
            spec=spec.model_dump(mode="json"), max_runtime_s=runtime,
        ))
        # The row is committed before the message is sent: a lost message leaves a queued
        # row that can be re-sent, never a message without a job.
        self.session.commit()
        enqueue_training(self.settings, job.id, job.queue)
        return job, True

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
        return self.jobs.events(job.id)

    def metrics(self, principal: Principal, job_id: str, after_epoch: int) -> list[JobMetric]:
        return self.jobs.metrics(self.get(principal, job_id).id, after_epoch)
