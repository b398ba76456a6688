"""What every `capas` command prints through: the two consoles, tables that read at any width,
one way of failing with a sentence, and the API client whose refusals end the command."""

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from capas.client import CapasAPIError, Client

console = Console()
err = Console(stderr=True)

# Where the command connects, from the root options `--url` and `--api-key`; unset, the client
# looks in the environment, then in the saved credentials.
connection: dict[str, str | None] = {"url": None, "api_key": None}


def say(message: str) -> None:
    """Print a message as written (brackets are text, not markup), on one line however long,
    so that a script may cut a field of it."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print `error: message` (as written: brackets are text, not markup) and exit 1."""
    err.print(f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def read_json(path: Path, what: str) -> Any:
    """A JSON file the user named, or a sentence saying why it cannot be read."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"{what} '{path}' does not exist")
    except IsADirectoryError:
        fail(f"{what} '{path}' is a folder, not a file")
    except UnicodeDecodeError:
        fail(f"{what} '{path}' is not text, so not JSON")
    except json.JSONDecodeError as error:
        fail(f"{what} '{path}' is not JSON: line {error.lineno}, column {error.colno}: "
             f"{error.msg}")


UNBOUNDED = 1_000_000


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *,
                whole: Sequence[str] = ("id", "status"),
                droppable: Sequence[str] = ()) -> None:
    """A table that fits the terminal: the `whole` columns (ids, statuses) are never cut nor
    wrapped, the others wrap, and while even that does not fit, the `droppable` columns go,
    in their order. Cells are text as given, never console markup."""
    rows = [list(row) for row in rows]
    shown = list(headers)
    for dropped in [None, *droppable]:
        if dropped is not None:
            shown.remove(dropped)
        table = Table(*(Column(h, no_wrap=h in whole, overflow="fold") for h in shown),
                      box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for row in rows:
            table.add_row(*(Text(row[headers.index(h)]) for h in shown))
        # The narrowest it renders without breaking a word (measured without the terminal's
        # bound, which would clamp it)
        unbounded = console.options.update_width(UNBOUNDED)
        if Measurement.get(console, unbounded, table).minimum <= console.width:
            break
    console.print(table)


def _print_refusal(error: CapasAPIError) -> None:
    """The message once, then only the details it does not already say (a long list of
    details is summarized by the API in its first few)."""
    lines = [f"error {error.status} ({error.code}): {error.message}"]
    for detail in error.details:
        said = f"{detail.get('field')}: {detail.get('message', '')}"
        if said not in error.message:
            lines.append(f"  - {said} (received {json.dumps(detail.get('value'))})")
    for line in lines:
        err.print(line, style="red" if line is lines[0] else None, markup=False,
                  highlight=False, soft_wrap=True)


@contextmanager
def api_client() -> Iterator[Client]:
    """A client of the API (`--url` and `--api-key`, else CAPAS_URL, CAPAS_HOST and CAPAS_PORT,
    CAPAS_API_KEY, else the saved credentials); a refusal or an API that does not answer is
    printed as a sentence, and the command exits 1."""
    with Client(connection["url"], connection["api_key"]) as client:
        try:
            yield client
        except CapasAPIError as error:
            _print_refusal(error)
            raise typer.Exit(1) from None
        except httpx.TransportError as error:
            fail(f"cannot reach the Capas API at {client.url} ({type(error).__name__}: "
                 f"{error or 'no answer'}). Is it running (`capas up`), and on that address? "
                 "Set it with --url or CAPAS_URL (or CAPAS_HOST and CAPAS_PORT).")
