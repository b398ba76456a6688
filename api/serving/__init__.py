"""Serving: `POST /models/{name}/predict`, `POST /predict` and `POST /v2/models/{name}[/versions/
{version}]/infer` as one small ASGI app (`api.serving.app`) mounted in front of the FastAPI app,
with its own key lookup, body cap and timeout, errors and metrics."""
