"""Queries on the model registry: models and their versions."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from core.models import ModelVersion, RegisteredModel


class ModelRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, name: str) -> RegisteredModel | None:
        return self.session.scalar(
            select(RegisteredModel).where(RegisteredModel.name == name)
            .options(selectinload(RegisteredModel.versions))
        )

    def get_or_create(self, name: str, owner_id: int) -> RegisteredModel:
        model = self.get(name)
        if model is None:
            model = RegisteredModel(name=name, owner_id=owner_id)
            self.session.add(model)
            self.session.flush()
        return model

    def visible_to(self, owner_id: int | None) -> list[RegisteredModel]:
        query = (select(RegisteredModel).order_by(RegisteredModel.name)
                 .options(selectinload(RegisteredModel.versions)))
        if owner_id is not None:
            query = query.where(RegisteredModel.owner_id == owner_id)
        return list(self.session.scalars(query))

    def add_version(self, model: RegisteredModel, **values) -> ModelVersion:
        # Lock-free numbering is safe: (model_id, version) is unique, so a racing
        # registration fails and rolls back instead of sharing a number.
        latest = self.session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
        )
        version = ModelVersion(model_id=model.id, version=(latest or 0) + 1, **values)
        self.session.add(version)
        self.session.flush()
        return version

    def get_version(self, model: RegisteredModel, version: int) -> ModelVersion | None:
        return self.session.scalar(
            select(ModelVersion).where(ModelVersion.model_id == model.id,
                                       ModelVersion.version == version)
        )

    def latest_version(self, model: RegisteredModel) -> ModelVersion | None:
        return self.session.scalar(
            select(ModelVersion).where(ModelVersion.model_id == model.id)
            .order_by(ModelVersion.version.desc()).limit(1)
        )
