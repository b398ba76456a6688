"""The OpenAPI document states the errors each operation can answer, in their shapes, with the
limits behind them (the schema tier checks the running service against it)."""

import json

import pytest

from api.app import create_app
from core.settings import Settings


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi") / "data", max_body_mb=7,
                        body_timeout_s=12)
    return create_app(settings).openapi()


def operations(document: dict):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_error_is_documented_in_the_shape_it_is_answered_in(document):
    for method, path, operation in operations(document):
        shape = "V2Error" if path.startswith("/v2") else "Error"
        errors = {status: response for status, response in operation["responses"].items()
                  if int(status) >= 400}
        assert "500" not in errors
        for status, response in errors.items():
            assert response["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{shape}"}, (method, path, status)
        if operation.get("security"):
            assert "401" in errors, (method, path)
        if "requestBody" in operation:
            assert {"400", "408", "413", "422"} <= set(errors), (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
    schemas = document["components"]["schemas"]
    assert set(schemas["Error"]["properties"]) == {"error"}
    assert schemas["V2Error"]["properties"]["error"] == {"title": "Error", "type": "string"}
    assert "HTTPValidationError" not in schemas


def test_what_the_services_refuse_with_and_the_limits_are_stated(document):
    paths = document["paths"]
    assert {"409", "429"} <= set(paths["/jobs"]["post"]["responses"])
    assert "503" in paths["/readyz"]["get"]["responses"]
    # What the artifact store holds: 503 while the object store cannot be reached.
    download = paths["/models/{name}/versions/{version}/artifacts/{fmt}"]["get"]["responses"]
    assert download["503"]["description"].startswith("The artifact store cannot be reached")
    for path in ("/predict", "/v2/models/{name}/infer"):
        assert "503" in paths[path]["post"]["responses"], path
    assert "415" in paths["/v2/models/{name}/infer"]["post"]["responses"]
    assert "403" not in paths["/me"]["get"]["responses"]  # every valid key reads it
    responses = paths["/predict"]["post"]["responses"]
    assert responses["413"]["description"] == "The body exceeds 7 MB."
    assert "12 s" in responses["408"]["description"]


def test_bodies_a_route_reads_itself_are_documented_and_every_reference_resolves(document):
    upload = document["paths"]["/datasets"]["post"]["requestBody"]["content"]
    fields = upload["multipart/form-data"]["schema"]
    assert fields["required"] == ["file"] and fields["properties"]["file"]["format"] == "binary"
    assert fields["properties"]["task"]["enum"] == ["classification", "regression"]
    text = json.dumps(document)
    assert "#/$defs/" not in text and '"$defs"' not in text
    for reference in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert reference.removeprefix("#/components/schemas/") in document["components"][
            "schemas"], reference
    events = document["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["200"]
    assert list(events["content"]) == ["text/event-stream"]
