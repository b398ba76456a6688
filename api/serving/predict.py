"""`POST /models/{name}/predict` and `POST /predict`: instances in, predictions out, in JSON."""

import json

from fastapi import Response

from api.schemas.models import PredictByNameIn, PredictIn
from api.serving.request import BATCH_SIZE_HEADER, SERVING_SECURITY, ServingRequest, parse_body


def openapi(body: type[PredictIn]) -> dict:
    """What FastAPI would document for `body`, which the endpoint parses itself."""
    return {**SERVING_SECURITY, "requestBody": {"required": True, "content": {
        "application/json": {"schema": body.model_json_schema()}}}}


def _prediction(result: dict, batch_size: int) -> Response:
    answer = {key: value for key, value in result.items() if value is not None}
    return Response(json.dumps(answer, separators=(",", ":")), media_type="application/json",
                    headers={BATCH_SIZE_HEADER: str(batch_size)})


async def predict(request: ServingRequest, name: str) -> Response:
    body = parse_body(PredictIn, request.content)
    return _prediction(*await request.inference.predict(
        request.principal, name, body.instances, body.version, body.alias))


async def predict_by_body(request: ServingRequest) -> Response:
    body = parse_body(PredictByNameIn, request.content)
    return _prediction(*await request.inference.predict(
        request.principal, body.model, body.instances, body.version, body.alias))
