"""Queries on the model registry: models, their versions, aliases and the aliases' history."""

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from core.models import (
    ModelAlias,
    ModelAliasEvent,
    ModelVersion,
    RegisteredModel,
    utcnow,
)
from core.repositories import dialect_insert


class ModelRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, name: str, with_versions: bool = True) -> RegisteredModel | None:
        query = select(RegisteredModel).where(RegisteredModel.name == name)
        if with_versions:
            query = query.options(selectinload(RegisteredModel.versions),
                                  selectinload(RegisteredModel.aliases))
        return self.session.scalar(query)

    def reserve(self, name: str, owner_id: int) -> int:
        """Make `name` the owner's unless someone holds it already; returns its owner's id.

        Race-free: two transactions reserving one new name at once both run the insert, the
        unique name makes the second wait for the first and then insert nothing, and both read
        back the one owner. No savepoint is needed, so SQLite's driver takes it too.
        """
        insert = dialect_insert(self.session)
        self.session.execute(insert(RegisteredModel).values(name=name, owner_id=owner_id)
                             .on_conflict_do_nothing())
        return self.session.scalars(select(RegisteredModel.owner_id)
                                    .where(RegisteredModel.name == name)).one()

    def visible_to(self, owner_id: int | None) -> list[RegisteredModel]:
        """Everything (`owner_id` None), or the owner\'s and the public ones."""
        query = (select(RegisteredModel).order_by(RegisteredModel.name)
                 .options(selectinload(RegisteredModel.versions),
                          selectinload(RegisteredModel.aliases)))
        if owner_id is not None:
            query = query.where(or_(RegisteredModel.owner_id == owner_id, RegisteredModel.public))
        return list(self.session.scalars(query))

    def add_version(self, model: RegisteredModel, **values: Any) -> ModelVersion:
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

    def versions_newest_first(self, model: RegisteredModel) -> list[ModelVersion]:
        return list(self.session.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model.id)
            .order_by(ModelVersion.version.desc())
        ))

    def aliased_version(self, model: RegisteredModel, alias: str) -> ModelVersion | None:
        return self.session.scalar(
            select(ModelVersion).join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
            .where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
        )

    def set_alias(self, model: RegisteredModel, alias: str, version: ModelVersion,
                  user_id: int) -> ModelAliasEvent:
        """Point `alias` at `version` and record the move; returns the recorded move."""
        row = self._alias(model, alias)
        previous = row.version.version if row is not None else None
        if row is None:
            row = ModelAlias(model_id=model.id, alias=alias, version_id=version.id)
            self.session.add(row)
        else:
            row.version_id, row.updated_at = version.id, utcnow()
        event = ModelAliasEvent(model_id=model.id, alias=alias, version=version.version,
                                previous_version=previous, user_id=user_id)
        self.session.add(event)
        self.session.flush()
        return event

    def remove_alias(self, model: RegisteredModel, alias: str,
                     user_id: int) -> ModelAliasEvent | None:
        """Remove `alias` and record it as a move to no version; None if there is no such alias."""
        row = self._alias(model, alias)
        if row is None:
            return None
        event = ModelAliasEvent(model_id=model.id, alias=alias, version=None,
                                previous_version=row.version.version, user_id=user_id)
        self.session.delete(row)
        self.session.add(event)
        self.session.flush()
        return event

    def _alias(self, model: RegisteredModel, alias: str) -> ModelAlias | None:
        return self.session.scalar(select(ModelAlias).where(ModelAlias.model_id == model.id,
                                                            ModelAlias.alias == alias))

    def alias_history(self, model: RegisteredModel, alias: str) -> list[ModelAliasEvent]:
        return list(self.session.scalars(
            select(ModelAliasEvent)
            .where(ModelAliasEvent.model_id == model.id, ModelAliasEvent.alias == alias)
            .order_by(ModelAliasEvent.id)
        ))

