"""The `capas` command: run the service (`up`, `api`, `worker`, `migrate`) and use it.

Each module holds one group of commands; this one puts them together, in the order `--help`
lists them.
"""

from typing import Annotated

import typer

from capas.cli import code, console, datasets, evaluation, jobs, models, service, studies, users

app = typer.Typer(help="Train and serve neural networks from a declarative layer spec.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def connect(url: Annotated[str | None, typer.Option(
                help="the API's address (else CAPAS_URL, CAPAS_HOST and CAPAS_PORT, else the "
                     "saved credentials)")] = None,
            api_key: Annotated[str | None, typer.Option(
                help="the key to call it with (else CAPAS_API_KEY, else the saved credentials)",
                show_default=False)] = None) -> None:
    """Train and serve neural networks from a declarative layer spec."""
    console.connection.update(url=url, api_key=api_key)


# Added without a name, a module's commands are the root's own.
app.add_typer(service.app)
app.add_typer(jobs.app)
app.add_typer(evaluation.app)
app.add_typer(code.app)
app.add_typer(models.app)
app.add_typer(datasets.app, name="datasets")
app.add_typer(studies.app, name="study")
app.add_typer(users.users_app, name="users")
app.add_typer(users.keys_app, name="keys")
app.add_typer(service.admin_app, name="admin")
