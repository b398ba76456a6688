"""Spec inspection shared by `POST /specs/validate` and `POST /jobs`, and the catalog."""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from core.errors import Forbidden, NotFound
from core.services.auth import Principal
from core.services.datasets import DatasetService
from core.settings import Settings
from ml.errors import SpecError, SpecIssue
from ml.spec import Analysis, Draft, JobSpec, check_dataset_fit, inspect_model, parse_job_spec


@dataclass
class Inspection:
    spec: JobSpec | Draft | None = None  # when the body parses
    analysis: Analysis | None = None
    issues: list[SpecIssue] = field(default_factory=list)
    dataset: dict[str, Any] | None = None  # the schema of the dataset named, if readable

    def details(self) -> list[dict[str, Any]]:
        return [{"field": issue.path, "message": issue.message, "value": issue.value}
                for issue in self.issues]

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"valid": not self.issues, "errors": self.details()}
        if self.analysis is not None:
            body.update(self.analysis.model_dump())
        return body


class SpecService:
    def __init__(self, session: Session, settings: Settings):
        self.session, self.settings = session, settings

    def inspect(self, principal: Principal, body: Any, require_dataset: bool) -> Inspection:
        """Every problem of a job body at once: schema, shapes, limits, dataset fit."""
        try:
            spec: JobSpec | Draft = (parse_job_spec(body) if require_dataset
                                     else parse_job_spec(body, Draft))
        except SpecError as error:
            return Inspection(issues=error.issues)
        analysis, issues = inspect_model(spec.model, self.settings.max_params)
        if spec.training.epochs > self.settings.max_epochs:
            issues.append(SpecIssue("training.epochs", f"{spec.training.epochs} exceeds the "
                                    f"limit of {self.settings.max_epochs}", spec.training.epochs))
        complete = len(analysis.layers) == len(spec.model.layers)
        dataset = None
        if spec.dataset is not None:
            try:
                dataset = DatasetService(self.session, self.settings).schema(principal,
                                                                             spec.dataset)
            except (NotFound, Forbidden) as error:
                issues.append(SpecIssue("dataset", error.message, spec.dataset))
            else:
                if complete:
                    try:
                        check_dataset_fit(spec, dataset, analysis)
                    except SpecError as error:
                        issues.extend(error.issues)
        return Inspection(spec=spec, analysis=analysis, issues=issues, dataset=dataset)
