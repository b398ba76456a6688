"""Bodies of the user and key routes."""

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
)

from api.schemas.base import Id, Name, Orm, RequestBody, Timestamp


class Me(BaseModel):
    id: int
    name: str
    role: str
    models: list[str] | None = None  # an app key's models


class UserIn(RequestBody):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")]
    role: Literal["admin", "member", "app"] = "member"
    models: Annotated[list[Name], Field(min_length=1, max_length=1000)] | None = None


class UserCreated(Me):
    api_key: str  # shown once


class KeyIn(RequestBody):
    user_id: Id | None = None


class KeyOut(Orm):
    id: int
    user_id: int
    prefix: str
    created_at: Timestamp
    revoked_at: Timestamp


class KeyCreated(KeyOut):
    api_key: str  # shown once
