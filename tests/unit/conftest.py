"""Unit-tier fixtures: the API on the embedded stack, signed in as the first admin."""

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from capas.cli import app as capas_command
from capas.cli import console
from capas.client import Client
from core.db import session_scope
from core.services.auth import AuthService


@pytest.fixture
def api(embedded_settings) -> TestClient:
    """A client of a fresh app (SQLite, filesystem broker, no worker) with the admin's key;
    `api.settings` is its settings."""
    with session_scope(embedded_settings) as session:
        key = AuthService(session).bootstrap_admin(embedded_settings)
    client = TestClient(create_app(embedded_settings),
                        headers={"Authorization": f"Bearer {key}"})
    client.settings = embedded_settings
    return client


@pytest.fixture
def capas(api, monkeypatch):
    """Runs a `capas` command against the app in this process, with the admin's key or `key`."""
    def client(url: str | None = None, api_key: str | None = None) -> Client:
        connected = Client(url="http://testserver", api_key=api_key)
        connected.http = TestClient(api.app, headers=connected.http.headers)  # same interface
        return connected

    monkeypatch.setattr(console, "Client", client)
    admin_key = api.headers["Authorization"].removeprefix("Bearer ")
    # wide enough that no cell wraps, unless a test asks for a terminal's `columns`
    return lambda *args, key=admin_key, columns=240: CliRunner().invoke(
        capas_command, list(args), env={"COLUMNS": str(columns), "CAPAS_API_KEY": key})
