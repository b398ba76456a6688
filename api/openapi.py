"""The OpenAPI document's errors: every status each operation can answer, in its error shape.

FastAPI documents what a route returns and its own 422; the rest is added here, in one place,
from the app's routes and settings: the key's 401 and 403, what a body may meet (its size cap,
its timeout, a body that cannot be parsed), 404 for what a path names, and what the services
behind each route refuse with (409, 415, 429, 503), each described with the limit behind it
(503: the services a readiness check asks, or the artifact store a route reads or writes).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from api.errors import V2_PREFIX
from api.uploads import FILE_FIELD, upload_body_limit
from core.settings import Settings
from ml.uploads import UploadOptions

MB = 1024 * 1024
COMPONENTS = "#/components/schemas/"


class ErrorDetail(BaseModel):
    """One problem: `field` names where it is, `value` echoes what was sent there (cut to its
    start when long); other keys say more (a message, a row, a limit)."""

    model_config = ConfigDict(extra="allow")
    field: str
    value: Any = None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class Error(BaseModel):
    """Every error of the API but the Open Inference Protocol's."""

    error: ErrorBody


class V2Error(BaseModel):
    """An error of the Open Inference Protocol routes (`/v2/...`): its message in `error`, as
    that protocol's clients read it."""

    error: str
    code: str
    details: list[ErrorDetail]


# What the services behind a route refuse with, beyond what the rules in `_statuses` give
# every route of its kind (grep `raise` for `core.errors` classes in `core/services/`).
# A model that is not there or not visible; a version that is not servable (or whose file is
# missing or altered); the object store that holds its file out of reach.
SERVED = {404, 409, 503}
DOMAIN_STATUSES: dict[tuple[str, str], set[int]] = {
    ("POST", "/jobs"): {409, 429},  # the model name is another's, no CUDA worker; job quota
    ("POST", "/jobs/{job_id}/cancel"): {409},  # already finished
    ("GET", "/jobs/{job_id}/code"): {422},  # a layer no script is written for
    ("POST", "/studies"): {409},  # a trial's model name is another's, no CUDA worker
    ("POST", "/studies/{study_id}/cancel"): {409},  # already over
    ("POST", "/studies/{study_id}/publish"): {409},  # no succeeded trial yet
    ("POST", "/datasets"): {415, 503},  # not multipart, or not the format it claims; store
    ("DELETE", "/datasets/{dataset_id}"): {409, 503},  # used by a queued or running job; store
    ("POST", "/users"): {409},  # the name is taken
    ("POST", "/keys"): {404},  # no such user
    ("GET", "/keys"): {404},
    ("DELETE", "/keys/{key_id}"): {409},  # the last admin key
    # A file missing or altered in the artifact store; the object store out of reach.
    ("GET", "/models/{name}/versions/{version}/artifacts/{fmt}"): {409, 503},
    ("GET", "/jobs/{job_id}/evaluation"): {409, 503},
    # Not servable, or its file altered; the object store that holds it, or the data, out of reach.
    ("POST", "/models/{name}/versions/{version}/evaluate"): {409, 503},
    ("POST", "/predict"): SERVED,
    ("POST", "/models/{name}/predict"): SERVED,
    ("GET", "/v2/models/{name}/ready"): SERVED,
    ("GET", "/v2/models/{name}/versions/{version}/ready"): SERVED,
    ("POST", "/v2/models/{name}/infer"): SERVED | {415},  # a Content-Encoding not supported
    ("POST", "/v2/models/{name}/versions/{version}/infer"): SERVED | {415},
    ("GET", "/readyz"): {503},
    ("GET", "/v2/health/ready"): {503},
}
# The readiness checks, whose 503 names each service; every other 503 is the artifact store's.
READINESS = {("GET", "/readyz"), ("GET", "/v2/health/ready")}
# Routes open to every valid key, an app's included: never 403.
OPEN_TO_EVERY_KEY = {("GET", "/me"), ("GET", "/v2")}
# Answers whose media type FastAPI cannot see (the route builds its own response), and event
# streams, which it documents with OpenAPI 3.2's `itemSchema`, unknown to a 3.1 document.
MEDIA_TYPES = {
    ("GET", "/metrics"): ["text/plain"],
    ("GET", "/jobs/{job_id}/events"): ["text/event-stream"],
    ("GET", "/events"): ["text/event-stream"],
    ("GET", "/jobs/{job_id}/metrics.csv"): ["text/csv"],
    ("GET", "/jobs/{job_id}/code"): ["text/x-python"],
    ("GET", "/studies/{study_id}/events"): ["text/event-stream"],
    ("GET", "/studies/{study_id}/trials.csv"): ["text/csv"],
    # JSON, or with binary tensor data: the JSON header then the raw bytes.
    ("POST", "/v2/models/{name}/infer"): ["application/json", "application/octet-stream"],
    ("POST", "/v2/models/{name}/versions/{version}/infer"): ["application/json",
                                                             "application/octet-stream"],
}


def install(app: FastAPI, serving_routes: list[APIRoute]) -> None:
    """Serve the app's document, with the serving component's routes (which FastAPI does not
    route to) and the errors added, built once on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                summary=app.summary, description=app.description, tags=app.openapi_tags,
                servers=app.servers, routes=[*app.routes, *serving_routes],
                separate_input_output_schemas=app.separate_input_output_schemas)
            add_errors(document, app.state.settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi


def add_errors(document: dict[str, Any], settings: Settings) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Error, V2Error):
        found = model.model_json_schema(ref_template=COMPONENTS + "{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    _document_upload(document["paths"]["/datasets"]["post"], settings)
    for path, operations in document["paths"].items():
        shape = {"$ref": COMPONENTS + (V2Error if path.startswith(V2_PREFIX) else Error).__name__}
        for method, operation in operations.items():
            route = (method.upper(), path)
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _not_null(parameter["schema"])
            if route in MEDIA_TYPES:
                success = next(s for s in operation["responses"] if s.startswith("2"))
                schema = operation["responses"][success].get("content", {}).get(
                    "application/json", {}).get("schema", {})
                operation["responses"][success]["content"] = {
                    media_type: {"schema": schema if media_type.endswith("json") else {}}
                    for media_type in MEDIA_TYPES[route]}
            for status in sorted(_statuses(route, operation)):
                operation["responses"][str(status)] = {
                    "description": _description(status, route, settings),
                    "content": {"application/json": {"schema": shape}}}
                if status == 401:
                    operation["responses"]["401"]["headers"] = {"WWW-Authenticate": {
                        "schema": {"type": "string"}, "description": "Bearer"}}
    _hoist_definitions(document, schemas)
    # FastAPI's own error shape is never answered: every 422 is in the API's.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _statuses(route: tuple[str, str], operation: dict[str, Any]) -> set[int]:
    statuses = set(DOMAIN_STATUSES.get(route, ()))
    if operation.get("security"):
        statuses |= {401} if route in OPEN_TO_EVERY_KEY else {401, 403}
    if "requestBody" in operation:
        # Cannot be parsed (not UTF-8, broken multipart), stopped arriving, too large.
        statuses |= {400, 408, 413, 422}
    if operation.get("parameters"):
        statuses.add(422)
    if any(p["in"] == "path" for p in operation.get("parameters", [])):
        statuses.add(404)
    return statuses


def _description(status: int, route: tuple[str, str], settings: Settings) -> str:
    body_mb = (upload_body_limit(settings) / MB if route == ("POST", "/datasets")
               else settings.max_body_mb)
    return {
        400: "The body cannot be parsed: not UTF-8, or broken multipart.",
        401: "No API key, or one that is unknown or revoked: send `Authorization: Bearer "
             "<key>`.",
        403: "The key may not do this: another member's resource, an admin's route, or any "
             "route but prediction and `/me` for an app key.",
        404: "What the request names does not exist, or is not visible to this key.",
        408: f"The body stopped arriving: nothing came for {settings.body_timeout_s:g} s.",
        409: "The request conflicts with the state of what it names.",
        413: f"The body exceeds {body_mb:g} MB.",
        415: "The body's media type or encoding is not one this route reads.",
        422: "A parameter or the body is invalid: each detail names the field and echoes the "
             "value.",
        429: f"Too many jobs queued or running: at most {settings.max_concurrent_jobs} for a "
             "member.",
        503: ("The database, the broker or the artifact store cannot be reached: a detail per "
              "service says whether it answers." if route in READINESS else
              "The artifact store cannot be reached (with CAPAS_ARTIFACT_URL, the object store "
              "does not answer or refuses the request): the message names it."),
    }[status]


def _document_upload(operation: dict[str, Any], settings: Settings) -> None:
    """The multipart body the upload route reads by hand: the file and its form fields."""
    fields = UploadOptions.model_json_schema()
    properties = {name: _not_null(schema) for name, schema in fields["properties"].items()}
    fields["properties"] = {FILE_FIELD: {
        "type": "string", "format": "binary",
        "description": f"The dataset: .csv, .npz or .zip, at most {settings.max_upload_mb} MB"},
        **properties}
    fields["required"] = [FILE_FIELD]
    operation["requestBody"] = {"required": True,
                                "content": {"multipart/form-data": {"schema": fields}}}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of an optional parameter or form field, which is left out, never null: the
    text "null" is no value of it."""
    choices = [choice for choice in schema.get("anyOf", []) if choice.get("type") != "null"]
    if len(choices) != 1:
        return schema
    return {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")}, **choices[0]}


def _hoist_definitions(document: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Definitions nested in a route's own schema (`$defs`, from `model_json_schema()`) moved
    to the document's components, where the references of an OpenAPI document point."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for name, definition in node.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
                visit(definition)
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                node["$ref"] = COMPONENTS + reference.removeprefix("#/$defs/")
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(document["paths"])
