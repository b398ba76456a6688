"""The model registry: versions, cards, aliases, downloads (prediction is the serving
component's: `api.serving`)."""

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from api.deps import InferenceDep, PrincipalDep, SessionDep, SettingsDep
from api.schemas.base import VersionText
from api.schemas.evaluation import EvaluateIn, Evaluation
from api.schemas.models import (
    AliasIn,
    AliasOut,
    ModelCard,
    ModelOut,
    ModelPatch,
    VersionSummary,
)
from core.models import RegisteredModel
from core.services.evaluation import EvaluationService
from core.services.registry import RegistryService, positive_version
from ml.artifacts import available_formats

router = APIRouter(tags=["models"])


def model_out(service: RegistryService, model: RegisteredModel) -> ModelOut:
    versions = [VersionSummary.model_validate({
        **{c: getattr(v, c) for c in VersionSummary.model_fields if hasattr(v, c)},
        "metrics": v.card.get("metrics", {}),
        "formats": available_formats(v.card),
    }) for v in model.versions]
    by_id = {v.id: v.version for v in model.versions}
    policy = service.policy(model)
    default = service.default_version(model)
    return ModelOut(name=model.name, owner_id=model.owner_id, public=model.public,
                    created_at=model.created_at,
                    latest_version=versions[-1].version if versions else None,
                    default_version=default.version if default is not None else None,
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


@router.post("/models/{name}/versions/{version}/evaluate", response_model=Evaluation,
             response_model_exclude_unset=True)
def evaluate_version(name: str, version: VersionText, body: EvaluateIn, principal: PrincipalDep,
                     session: SessionDep, settings: SettingsDep,
                     inference: InferenceDep) -> Evaluation:
    """Your version's report on a dataset with the version's schema, computed by its served
    ONNX graph: on the test split of the data it was trained on, else on every sample."""
    return Evaluation.model_validate(EvaluationService(session, settings, inference.predictors)
                                     .evaluate(principal, name, positive_version(version),
                                               body.dataset))


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
