"""The prediction routes served straight from ASGI, ahead of FastAPI's router and middleware.

A prediction is the one request an app makes thousands of times a second, and on a small model
FastAPI's routing, dependency solving and own middleware layers (errors, telemetry, body limit)
cost more than the inference. The prediction endpoints therefore take the request alone
(`api.deps.serving` authenticates it) and are called from here when a POST matches their path;
FastAPI still holds them as routes, which document them in the OpenAPI schema and answer other
methods on those paths with 405, and their path parameters are checked against the types they
declare. Errors are rendered by the app's own handlers, so both ways answer alike; the body cap
and the metrics wrap both.
"""

from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import HANDLERS, internal_error


class ServingDispatch:
    def __init__(self, app: ASGIApp, routes: list[APIRoute]):
        self.app = app
        self.routes = [route for route in routes if "POST" in route.methods]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            # Matched as Starlette's router matches: on the path below the app's root path.
            path, root = scope["path"], scope.get("root_path", "")
            path = path[len(root):] if root and path.startswith(root) else path
            for route in self.routes:
                found = route.path_regex.match(path)
                if found:
                    await self._serve(route, found.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _serve(route: APIRoute, params: dict[str, str], scope: Scope, receive: Receive,
                     send: Send) -> None:
        path_params = {key: route.param_convertors[key].convert(value)
                       for key, value in params.items()}
        scope.update(route=route, path_params=path_params, endpoint=route.endpoint)
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request=request, **_validated(route, path_params))
        except Exception as error:
            handler = next(h for kind, h in HANDLERS.items() if isinstance(error, kind))
            await (await handler(request, error))(scope, receive, send)
            if handler is internal_error:
                raise  # for the server to log, as FastAPI's own error layer does
            return
        await response(scope, receive, send)


def _validated(route: APIRoute, path_params: dict[str, Any]) -> dict[str, Any]:
    """The path parameters as the route declares them (bounded numbers), as FastAPI would check
    them; refused in its words."""
    values, errors = {}, []
    for field in route.dependant.path_params:
        values[field.name], field_errors = field.validate(path_params[field.alias],
                                                          loc=("path", field.alias))
        errors += field_errors
    if errors:
        raise RequestValidationError(errors)
    return values
