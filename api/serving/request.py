"""What a prediction endpoint is handed: the request with its caller looked up and its body read,
and the way its JSON body is parsed."""

from typing import TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from core.services.auth import Principal
from core.services.inference import InferenceService

ModelT = TypeVar("ModelT", bound=BaseModel)
# Every prediction answer says how many instances were inferred together with it.
BATCH_SIZE_HEADER = "X-Capas-Batch-Size"
# The OpenAPI operation fields of a route that authenticates through `api.serving.auth`.
SERVING_SECURITY = {"security": [{"HTTPBearer": []}]}


class ServingRequest(Request):
    """A request to a prediction route, as the serving app hands it to its endpoint. A subclass
    of Starlette's, so that FastAPI documents the endpoint from its other parameters."""

    principal: Principal
    inference: InferenceService
    content: bytes  # the whole body, read under the cap and the timeout


def parse_body(model: type[ModelT], body: bytes) -> ModelT:
    """A JSON body validated by pydantic in one pass, its errors rendered like FastAPI's."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in error.errors()]) from None
