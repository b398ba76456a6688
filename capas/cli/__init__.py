"""The `capas` command: run the service (`up`, `api`, `worker`, `migrate`) and use it.

Each module holds one group of commands; this one puts them together, in the order `--help`
lists them.
"""

import typer

from capas.cli import datasets, jobs, models, service, users

app = typer.Typer(help="Train and serve neural networks from a declarative layer spec.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
# Added without a name, a module's commands are the root's own.
app.add_typer(service.app)
app.add_typer(jobs.app)
app.add_typer(models.app)
app.add_typer(datasets.app, name="datasets")
app.add_typer(users.users_app, name="users")
app.add_typer(users.keys_app, name="keys")
app.add_typer(service.admin_app, name="admin")
