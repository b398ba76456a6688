"""The model registry (versions, cards, aliases, downloads) and `/predict`."""

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from api.deps import (
    SERVING_SECURITY,
    InferenceDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    parse_body,
    serving,
)
from api.schemas.base import VersionText
from api.schemas.models import (
    AliasIn,
    AliasOut,
    ModelCard,
    ModelOut,
    ModelPatch,
    PredictByNameIn,
    PredictIn,
    PredictOut,
    VersionSummary,
)
from core.models import RegisteredModel
from core.services.registry import RegistryService, positive_version
from ml.artifacts import available_formats

router = APIRouter(tags=["models"])
# The prediction routes, which `api.dispatch` serves ahead of the router.
serving_router = APIRouter(tags=["models"])
BATCH_SIZE_HEADER = "X-Capas-Batch-Size"


def model_out(service: RegistryService, model: RegisteredModel) -> ModelOut:
    versions = [VersionSummary.model_validate({
        **{c: getattr(v, c) for c in VersionSummary.model_fields if hasattr(v, c)},
        "metrics": v.card.get("metrics", {}),
        "formats": available_formats(v.card),
    }) for v in model.versions]
    by_id = {v.id: v.version for v in model.versions}
    policy = service.policy(model)
    return ModelOut(name=model.name, owner_id=model.owner_id, public=model.public,
                    created_at=model.created_at,
                    latest_version=versions[-1].version if versions else None,
                    aliases={a.alias: by_id[a.version_id] for a in model.aliases},
                    batching={"max_batch_size": policy.max_batch_size,
                              "max_delay_ms": policy.max_delay_ms},
                    versions=versions)


@router.get("/models", response_model=list[ModelOut])
def list_models(principal: PrincipalDep, session: SessionDep,
                settings: SettingsDep) -> list[ModelOut]:
    service = RegistryService(session, settings)
    return [model_out(service, m) for m in service.visible(principal)]


@router.get("/models/{name}", response_model=ModelOut)
def get_model(name: str, principal: PrincipalDep, session: SessionDep,
              settings: SettingsDep) -> ModelOut:
    service = RegistryService(session, settings)
    return model_out(service, service.get(principal, name))


@router.patch("/models/{name}", response_model=ModelOut)
def update_model(name: str, body: ModelPatch, principal: PrincipalDep, session: SessionDep,
                 settings: SettingsDep, inference: InferenceDep) -> ModelOut:
    """Adaptive batching (`batching`) and who may use the model (`public`)."""
    service = RegistryService(session, settings)
    batching = body.batching.model_dump(include=body.batching.model_fields_set) \
        if body.batching is not None else {}
    model = service.update(principal, name, batching, body.public)
    session.commit()  # before this process resolves the model again
    inference.forget(name)
    return model_out(service, model)


@router.get("/models/{name}/versions/{version}", response_model=ModelCard)
def get_version(name: str, version: VersionText, principal: PrincipalDep, session: SessionDep,
                settings: SettingsDep) -> dict:
    return RegistryService(session, settings).card(principal, name, positive_version(version))


@router.get("/models/{name}/versions/{version}/artifacts/{fmt}",
            response_class=FileResponse, responses={200: {"content": {
                "application/octet-stream": {}}}})
def download_artifact(name: str, version: VersionText, fmt: str, principal: PrincipalDep,
                      session: SessionDep, settings: SettingsDep) -> FileResponse:
    artifact = RegistryService(session, settings).artifact(
        principal, name, positive_version(version), fmt)
    return FileResponse(artifact.path, media_type="application/octet-stream",
                        filename=artifact.filename,
                        headers={"ETag": f'"{artifact.sha256}"',
                                 "X-Capas-Sha256": artifact.sha256})


@router.put("/models/{name}/aliases/{alias}", response_model=AliasOut)
def set_alias(name: str, alias: str, body: AliasIn, principal: PrincipalDep,
              session: SessionDep, settings: SettingsDep, inference: InferenceDep) -> dict:
    moved = RegistryService(session, settings).set_alias(principal, name, alias, body.version)
    session.commit()  # before this process resolves the model again
    inference.forget(name)
    return moved


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
def remove_alias(name: str, alias: str, principal: PrincipalDep, session: SessionDep,
                 settings: SettingsDep, inference: InferenceDep) -> Response:
    """The alias stops resolving; its history keeps the removal."""
    RegistryService(session, settings).remove_alias(principal, name, alias)
    session.commit()  # before this process resolves the model again
    inference.forget(name)
    return Response(status_code=204)


@router.get("/models/{name}/aliases/{alias}", response_model=AliasOut)
def get_alias(name: str, alias: str, principal: PrincipalDep, session: SessionDep,
              settings: SettingsDep) -> dict:
    return RegistryService(session, settings).alias(principal, name, alias)


def _predict_openapi(body: type[PredictIn]) -> dict:
    """What FastAPI would document for `body`, for routes that parse it themselves."""
    return {**SERVING_SECURITY, "requestBody": {"required": True, "content": {
        "application/json": {"schema": body.model_json_schema()}}}}


def _prediction(result: dict, batch_size: int) -> Response:
    answer = {key: value for key, value in result.items() if value is not None}
    return Response(json.dumps(answer, separators=(",", ":")), media_type="application/json",
                    headers={BATCH_SIZE_HEADER: str(batch_size)})


# The prediction routes take the request alone (see `api.dispatch`); the response model
# documents the answer.
@serving_router.post("/models/{name}/predict", response_model=PredictOut,
                     openapi_extra=_predict_openapi(PredictIn))
async def predict(request: Request, name: str) -> Response:
    principal, inference = await serving(request)
    body = parse_body(PredictIn, await request.body())
    return _prediction(*await inference.predict(principal, name, body.instances, body.version,
                                                body.alias))


@serving_router.post("/predict", response_model=PredictOut,
                     openapi_extra=_predict_openapi(PredictByNameIn))
async def predict_by_body(request: Request) -> Response:
    principal, inference = await serving(request)
    body = parse_body(PredictByNameIn, await request.body())
    return _prediction(*await inference.predict(principal, body.model, body.instances,
                                                body.version, body.alias))
