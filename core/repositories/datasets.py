"""Queries on uploaded datasets and on the jobs that use them."""

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.models import Dataset, Job, JobStatus


class DatasetRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, dataset: Dataset) -> Dataset:
        self.session.add(dataset)
        self.session.flush()
        return dataset

    def get(self, dataset_id: str) -> Dataset | None:
        return self.session.get(Dataset, dataset_id)

    def visible_to(self, owner_id: int | None) -> list[Dataset]:
        """Everything (`owner_id` None), or the owner\'s and the public ones."""
        query = select(Dataset).order_by(Dataset.created_at, Dataset.id)
        if owner_id is not None:
            query = query.where(or_(Dataset.owner_id == owner_id, Dataset.public))
        return list(self.session.scalars(query))

    def owned_with_content(self, owner_id: int, sha256: str) -> list[Dataset]:
        return list(self.session.scalars(
            select(Dataset).where(Dataset.owner_id == owner_id, Dataset.sha256 == sha256)
        ))

    def count_with_content(self, sha256: str) -> int:
        return self.session.scalar(
            select(func.count()).select_from(Dataset).where(Dataset.sha256 == sha256)
        ) or 0

    def delete(self, dataset: Dataset) -> None:
        self.session.delete(dataset)
        self.session.flush()

    def active_jobs_using(self, dataset_id: str) -> list[str]:
        """Ids of the queued or running jobs that will read this dataset."""
        return list(self.session.scalars(
            select(Job.id).where(Job.dataset == dataset_id,
                                 Job.status.in_((JobStatus.queued, JobStatus.running)))
            .order_by(Job.created_at)
        ))
