"""What every `capas` command prints through: the two consoles, and the API client whose
refusals are printed as errors that end the command."""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from capas.client import CapasAPIError, Client

console = Console()
err = Console(stderr=True)


@contextmanager
def api_client() -> Iterator[Client]:
    """A client of the API (found through CAPAS_URL, CAPAS_API_KEY or the saved credentials);
    a refusal met in the block is printed with each detail, and the command exits 1."""
    with Client() as client:
        try:
            yield client
        except CapasAPIError as error:
            err.print(f"[red]error {error.status} ({error.code}):[/] {error.message}")
            for detail in error.details:
                err.print(f"  - {detail.get('field')}: {detail.get('message', '')} "
                          f"(received {json.dumps(detail.get('value'))})")
            raise typer.Exit(1) from None
