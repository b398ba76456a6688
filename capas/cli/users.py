"""`capas users` (admins add and list users) and `capas keys` (API keys: create, list,
revoke)."""

from typing import Annotated

import typer

from capas.cli.console import api_client, print_table, say

users_app = typer.Typer(help="Users: add and list them (admins only).", no_args_is_help=True)
keys_app = typer.Typer(help="Your API keys: create, list, revoke.", no_args_is_help=True)


@users_app.command("create")
def create_user(name: str,
                role: Annotated[str, typer.Option(help="member, admin or app")] = "member",
                model: Annotated[list[str] | None, typer.Option(
                    help="for an app: a model it may predict with (repeat for more)")] = None
                ) -> None:
    """Add a user and print its first API key, shown this once."""
    with api_client() as client:
        user = client.create_user(name, role, model)
    say(f"user {user['name']} ({user['role']}), key (shown once): {user['api_key']}")


@users_app.command("list")
def list_users() -> None:
    """List every user: id, name, role and, for an app, the models it may predict with."""
    with api_client() as client:
        users = client.users()
    print_table(["id", "name", "role", "models"],
                ([str(user["id"]), user["name"], user["role"], ", ".join(user["models"] or [])]
                 for user in users), whole=("id", "name", "role"))


@keys_app.command("create")
def create_key(user_id: Annotated[int | None, typer.Option(
        help="an admin may make a key for another user")] = None) -> None:
    """Make a new API key, printed this once."""
    with api_client() as client:
        key = client.create_key(user_id)
    say(f"key {key['id']} (shown once): {key['api_key']}")


@keys_app.command("list")
def list_keys(user_id: int | None = None) -> None:
    """List keys by id and prefix (the keys themselves are never shown again)."""
    with api_client() as client:
        keys = client.keys(user_id)
    print_table(["id", "prefix", "created", "revoked"],
                ([str(key["id"]), key["prefix"], key["created_at"][:19].replace("T", " "),
                  (key["revoked_at"] or "")[:19].replace("T", " ")] for key in keys),
                whole=("id", "prefix"))


@keys_app.command("revoke")
def revoke_key(key_id: int) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with api_client() as client:
        client.revoke_key(key_id)
    say(f"key {key_id} revoked")
