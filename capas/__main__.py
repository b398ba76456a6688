"""`python -m capas`: the `capas` command where its script is not installed."""

from capas.cli import app

app(prog_name="capas")
