"""Unit-tier fixtures: the API on the embedded stack, signed in as the first admin."""

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
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
