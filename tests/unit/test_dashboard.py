"""The dashboard's files: served without a key, plotly from its wheel, examples in sync."""

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.dashboard import PLOTLY_ROUTE, STATIC_DIR, plotly_bundle
from tests.conftest import EXAMPLES

SERVED_EXAMPLES = STATIC_DIR / "examples"


@pytest.fixture
def client(embedded_settings):
    return TestClient(create_app(embedded_settings))


def test_the_page_and_its_scripts_need_no_key(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in page.text
    for path in ("/static/app.js", "/static/api.js", "/static/style.css",
                 "/static/views/new-job.js", "/static/examples/index.json"):
        assert client.get(path).status_code == 200, path
    # Everything else still needs one.
    assert client.get("/jobs").status_code == 401


def test_unknown_static_files_answer_the_api_error_shape(client):
    missing = client.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_chart_library_comes_from_the_installed_plotly_wheel(client):
    bundle = plotly_bundle()
    if bundle is None:
        pytest.skip("plotly is not installed")
    served = client.get(PLOTLY_ROUTE)
    assert served.status_code == 200 and "javascript" in served.headers["content-type"]
    assert served.content == bundle.read_bytes()


def test_served_examples_are_the_repository_examples_byte_for_byte():
    originals = sorted(p.name for p in EXAMPLES.glob("*.json"))
    served = sorted(p.name for p in SERVED_EXAMPLES.glob("*.json") if p.name != "index.json")
    assert served == originals
    for name in originals:
        assert (SERVED_EXAMPLES / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
    listed = json.loads((SERVED_EXAMPLES / "index.json").read_text())
    assert sorted(item["file"] for item in listed) == originals
    assert all(item["name"] and item["title"] for item in listed)
