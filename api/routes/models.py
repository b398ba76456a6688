"""The model registry and prediction through ONNX Runtime."""

from fastapi import APIRouter, Request

from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.schemas import ModelOut, PredictByNameIn, PredictIn, PredictOut, VersionSummary
from core.models import RegisteredModel
from core.services.registry import RegistryService

router = APIRouter(tags=["models"])


def model_out(model: RegisteredModel) -> ModelOut:
    versions = [VersionSummary.model_validate({
        **{c: getattr(v, c) for c in VersionSummary.model_fields if hasattr(v, c)},
        "metrics": v.card.get("metrics", {}),
    }) for v in model.versions]
    return ModelOut(name=model.name, owner_id=model.owner_id, created_at=model.created_at,
                    latest_version=versions[-1].version if versions else None,
                    versions=versions)


@router.get("/models", response_model=list[ModelOut])
def list_models(principal: PrincipalDep, session: SessionDep,
                settings: SettingsDep) -> list[ModelOut]:
    return [model_out(m) for m in RegistryService(session, settings).visible(principal)]


@router.get("/models/{name}", response_model=ModelOut)
def get_model(name: str, principal: PrincipalDep, session: SessionDep,
              settings: SettingsDep) -> ModelOut:
    return model_out(RegistryService(session, settings).get(principal, name))


@router.post("/models/{name}/predict", response_model=PredictOut,
             response_model_exclude_none=True)
def predict(name: str, body: PredictIn, request: Request, principal: PrincipalDep,
            session: SessionDep, settings: SettingsDep) -> dict:
    return RegistryService(session, settings).predict(
        principal, name, body.instances, body.version, request.app.state.predictors)


@router.post("/predict", response_model=PredictOut, response_model_exclude_none=True)
def predict_by_body(body: PredictByNameIn, request: Request, principal: PrincipalDep,
                    session: SessionDep, settings: SettingsDep) -> dict:
    return RegistryService(session, settings).predict(
        principal, body.model, body.instances, body.version, request.app.state.predictors)
