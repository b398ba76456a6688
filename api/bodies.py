"""The job body of `POST /jobs` and `POST /specs/validate`, its size checked before the spec is
parsed: parsing and analysing a model costs time in proportion to its layers."""

from typing import Annotated, Any

from fastapi import Body, Depends

from api.deps import SettingsDep
from core.errors import Invalid


def job_body(body: Annotated[dict[str, Any], Body()], settings: SettingsDep) -> dict[str, Any]:
    """The body as sent, refused with 422 if its model has more layers than the limit."""
    model = body.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    if isinstance(layers, list) and len(layers) > settings.max_layers:
        raise Invalid(f"model.layers: {len(layers)} layers exceed the limit of "
                      f"{settings.max_layers}", [{"field": "model.layers", "value": len(layers),
                                                  "limit": settings.max_layers}])
    return body


# A sync dependency: FastAPI runs it in its thread pool, like the routes that take it.
JobBody = Annotated[dict[str, Any], Depends(job_body)]
