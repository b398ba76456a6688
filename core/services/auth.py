"""API keys: created random and shown once, stored hashed, resolved to their user."""

import hashlib
import json
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from core.models import ApiKey, Role, User
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
    models: tuple[str, ...] = ()  # what an `app` key may predict with

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    @property
    def is_app(self) -> bool:
        return self.role == Role.app

    def owner_filter(self) -> int | None:
        """The owner whose datasets and models are listed besides the public ones; admins see
        everything."""
        return None if self.is_admin else self.id

    def check_owner(self, owner_id: int) -> None:
        """For changing a dataset or model: its owner or an admin."""
        if self.is_app:
            raise Forbidden(f"an app key can only predict, with the models {list(self.models)}")
        if not self.is_admin and owner_id != self.id:
            raise Forbidden("this resource belongs to another user")

    def check_reader(self, owner_id: int, public: bool) -> None:
        """For reading a dataset: its owner, an admin, or any member when it is public."""
        if not public:
            self.check_owner(owner_id)
        self.check_person()

    def may_use_model(self, name: str, owner_id: int, public: bool) -> bool:
        if self.is_app:
            return name in self.models
        return self.is_admin or owner_id == self.id or public

    def check_model(self, name: str, owner_id: int, public: bool) -> None:
        """For reading a model and predicting with it."""
        if not self.may_use_model(name, owner_id, public):
            raise Forbidden(f"model '{name}' belongs to another user"
                            if not self.is_app else
                            f"this app key may predict with {list(self.models)}, not '{name}'",
                            [{"field": "model", "value": name}])

    def check_person(self) -> None:
        """Everything but predicting needs a member's or an admin's key."""
        if self.is_app:
            raise Forbidden(f"an app key can only predict, with the models {list(self.models)}")

    def check_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this needs an admin key")


class AuthService:
    def __init__(self, session: Session):
        self.users = UserRepository(session)

    def create_user(self, name: str, role: Role,
                    models: list[str] | None = None) -> tuple[User, str]:
        if self.users.get_by_name(name) is not None:
            raise Conflict(f"name: a user '{name}' already exists",
                           [{"field": "name", "value": name}])
        if role == Role.app and not models:
            raise Invalid("models: an app key needs the models it may predict with",
                          [{"field": "models", "value": models}])
        if role != Role.app and models:
            raise Invalid(f"models: only an app key is limited to models; a {role} sees its own",
                          [{"field": "models", "value": models}])
        user = self.users.add(name, role, models)
        key, _ = self.create_key(user)
        return user, key

    def create_key(self, user: User) -> tuple[str, ApiKey]:
        """A new key for the user: returned once in the clear, stored hashed."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        return key, self.users.add_key(user, key[:12], hash_key(key))

    def user(self, principal: Principal, user_id: int | None) -> User:
        """The caller, or (for an admin) the user named by id."""
        if user_id is not None and user_id != principal.id:
            principal.check_admin()
        user = self.users.get(user_id if user_id is not None else principal.id)
        if user is None:
            raise NotFound(f"user {user_id} not found", [{"field": "user_id", "value": user_id}])
        return user

    def keys(self, principal: Principal, user_id: int | None) -> list[ApiKey]:
        return self.users.keys_of(self.user(principal, user_id).id)

    def revoke_key(self, principal: Principal, key_id: int) -> str:
        """Revoke a key of the caller's (any key, for an admin); returns its hash."""
        key = self.users.get_key(key_id)
        if key is None or not (principal.is_admin or key.user_id == principal.id):
            raise NotFound(f"key {key_id} not found", [{"field": "key_id", "value": key_id}])
        if (key.revoked_at is None and key.user.role == Role.admin
                and self.users.active_admin_keys() == 1):
            raise Conflict(f"key {key_id} is the last key of any admin: revoking it would lock "
                           "every admin out. Create another admin key first (`capas keys "
                           "create`); a lost key is replaced on the server with `capas admin "
                           "reset-key`", [{"field": "key_id", "value": key_id}])
        self.users.revoke_key(key)
        return key.key_hash

    def users_all(self, principal: Principal) -> list[User]:
        principal.check_admin()
        return self.users.all()

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        record = self.users.active_key_by_hash(hash_key(key))
        if record is None:
            raise Unauthorized("invalid or revoked API key")
        user = record.user
        return Principal(user.id, user.name, user.role, tuple(user.models or ()))

    def bootstrap_admin(self, settings: Settings) -> str | None:
        """On first start, create the admin and save its key where the CLI finds it."""
        if self.users.count() > 0:
            return None
        _, key = self.create_user("admin", Role.admin)
        save_credentials(settings, key)
        return key

    def reset_admin_key(self, settings: Settings, name: str | None) -> tuple[User, str]:
        """A new key for an admin (the one named, else the first), for whoever runs the server
        and lost every admin key; saved where the CLI finds it. Other keys stay as they are."""
        user = self.users.get_by_name(name) if name is not None else self.users.first_admin()
        if user is None or user.role != Role.admin:
            raise NotFound(f"user: no admin named {name!r}" if name is not None
                           else "user: there is no admin yet; `capas migrate` creates one",
                           [{"field": "user", "value": name}])
        key, _ = self.create_key(user)
        save_credentials(settings, key)
        return user, key


def save_credentials(settings: Settings, key: str) -> None:
    """Where the `capas` command on this host finds its URL and key; readable by the owner."""
    path = settings.credentials_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": f"http://{settings.host}:{settings.port}",
                                "api_key": key}))
    path.chmod(0o600)
