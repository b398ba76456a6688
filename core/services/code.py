"""A job as a standalone plain-framework script (`ml.codegen`), for its owner."""

from sqlalchemy.orm import Session

from core.errors import Invalid
from core.services.auth import Principal
from core.services.datasets import DatasetService
from core.services.jobs import JobService
from core.settings import Settings
from ml.codegen import generate
from ml.errors import SpecError
from ml.spec import JobSpec


def job_code(session: Session, settings: Settings, principal: Principal, job_id: str,
             framework: str | None) -> str:
    """The script of the job `job_id` in `framework` (default: the job's); refused naming the
    layer (or objective) no script is written for."""
    job = JobService(session, settings).get(principal, job_id)
    spec = JobSpec.model_validate(job.spec)
    schema = DatasetService(session, settings).schema(principal, spec.dataset)
    try:
        return generate(spec, schema, framework)
    except SpecError as error:
        raise Invalid(str(error), [{"field": issue.path, "message": issue.message,
                                    "value": issue.value} for issue in error.issues]) from None
