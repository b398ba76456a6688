"""API keys: created random and shown once, stored hashed, resolved to their user."""

import hashlib
import json
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.errors import Forbidden, Unauthorized
from core.models import Role, User
from core.repositories.users import UserRepository
from core.settings import Settings

KEY_PREFIX = "capas_"


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough (no dictionary to guard against).
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    def owner_filter(self) -> int | None:
        """The owner id to restrict listings to; admins see everything."""
        return None if self.is_admin else self.id

    def check_owner(self, owner_id: int) -> None:
        if not self.is_admin and owner_id != self.id:
            raise Forbidden("this resource belongs to another user")


class AuthService:
    def __init__(self, session: Session):
        self.users = UserRepository(session)

    def create_user(self, name: str, role: Role) -> tuple[User, str]:
        user = self.users.add(name, role)
        return user, self.create_key(user)

    def create_key(self, user: User) -> str:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.users.add_key(user, key[:12], hash_key(key))
        return key

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        record = self.users.active_key_by_hash(hash_key(key))
        if record is None:
            raise Unauthorized("invalid or revoked API key")
        return Principal(record.user.id, record.user.name, record.user.role)

    def bootstrap_admin(self, settings: Settings) -> str | None:
        """On first start, create the admin and save its key where the CLI finds it."""
        if self.users.count() > 0:
            return None
        _, key = self.create_user("admin", Role.admin)
        path = settings.credentials_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"url": f"http://{settings.host}:{settings.port}",
                                    "api_key": key}))
        path.chmod(0o600)
        return key
