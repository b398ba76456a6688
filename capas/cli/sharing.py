"""Public or private, for models and datasets alike: the `--private` option, the switch, and
the listings' "public" column."""

from typing import Annotated

import typer

from capas.cli.console import api_client, say

PrivateOption = Annotated[bool, typer.Option(
    "--private", help="Close it again: only its owner (and admins) may use it.")]


def share(kind: str, ident: str, private: bool) -> None:
    """Open a `kind` ("model" or "dataset") to every member, or close it."""
    with api_client() as client:
        getattr(client, f"set_{kind}_public")(ident, not private)
    say(f"{kind} {ident} is now {'private' if private else 'public'}")


def public_mark(public: bool) -> str:
    return "yes" if public else ""
