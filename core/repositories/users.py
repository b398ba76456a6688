"""Queries on users and API keys."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import ApiKey, Role, User, utcnow


class UserRepository:
    def __init__(self, session: Session):
        self.session = session

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(User)) or 0

    def add(self, name: str, role: str, models: list[str] | None = None) -> User:
        user = User(name=name, role=role, models=models)
        self.session.add(user)
        self.session.flush()
        return user

    def get(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def all(self) -> list[User]:
        return list(self.session.scalars(select(User).order_by(User.id)))

    def keys_of(self, user_id: int) -> list[ApiKey]:
        return list(self.session.scalars(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)))

    def get_key(self, key_id: int) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def revoke_key(self, key: ApiKey) -> None:
        if key.revoked_at is None:
            key.revoked_at = utcnow()

    def active_admin_keys(self) -> int:
        """How many keys could still sign an admin in."""
        return self.session.scalar(
            select(func.count()).select_from(ApiKey).join(User, User.id == ApiKey.user_id)
            .where(User.role == Role.admin, ApiKey.revoked_at.is_(None))) or 0

    def first_admin(self) -> User | None:
        return self.session.scalar(select(User).where(User.role == Role.admin).order_by(User.id))

    def get_by_name(self, name: str) -> User | None:
        return self.session.scalar(select(User).where(User.name == name))

    def add_key(self, user: User, prefix: str, key_hash: str) -> ApiKey:
        key = ApiKey(user_id=user.id, prefix=prefix, key_hash=key_hash)
        self.session.add(key)
        self.session.flush()
        return key

    def active_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
