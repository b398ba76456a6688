"""`python -m capas.cli`: the `capas` command where its script is not installed."""

from capas.cli import app

app()
