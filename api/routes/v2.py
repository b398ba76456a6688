"""The KServe / Open Inference Protocol v2 REST API: server and model metadata, health and
readiness (inference is the serving component's: `api.serving.v2`)."""

from fastapi import APIRouter, Request

from api.deps import CallerDep, InferenceDep, SessionDep, SettingsDep
from api.routes.health import readiness
from api.schemas.base import VersionText
from api.serving.v2 import requested_version
from core.services.registry import RegistryService, positive_version
from ml.onnx_export import INPUT_NAME, OUTPUT_NAME

router = APIRouter(prefix="/v2", tags=["v2"])
PLATFORM = "onnxruntime_onnx"
MODEL_DATATYPES = {"float32": "FP32"}


@router.get("")
def server_metadata(request: Request, principal: CallerDep) -> dict:
    return {"name": "capas", "version": request.app.version,
            "extensions": ["binary_tensor_data"]}


@router.get("/health/live")
def live() -> dict:
    return {"live": True}


@router.get("/health/ready")
async def ready(settings: SettingsDep) -> dict:
    await readiness(settings)
    return {"ready": True}


def _tensor(name: str, dtype: str, shape: list[int]) -> dict:
    return {"name": name, "datatype": MODEL_DATATYPES[dtype], "shape": [-1, *shape]}


def _metadata(name: str, versions: list[int], card: dict) -> dict:
    return {"name": name, "versions": [str(v) for v in versions], "platform": PLATFORM,
            "inputs": [_tensor(INPUT_NAME, card["input"]["dtype"], card["input"]["shape"])],
            "outputs": [_tensor(OUTPUT_NAME, card["output"]["dtype"], card["output"]["shape"])]}


@router.get("/models/{name}")
def model_metadata(name: str, principal: CallerDep, session: SessionDep,
                   settings: SettingsDep) -> dict:
    service = RegistryService(session, settings)
    served = service.resolve(principal, name)
    versions = [v.version for v in service.get(principal, name).versions]
    return _metadata(name, versions, served.card)


@router.get("/models/{name}/versions/{version}")
def version_metadata(name: str, version: VersionText, principal: CallerDep, session: SessionDep,
                     settings: SettingsDep) -> dict:
    found = RegistryService(session, settings).resolve(principal, name,
                                                       positive_version(version))
    return _metadata(name, [found.version], found.card)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, principal: CallerDep, inference: InferenceDep,
                      version: VersionText | None = None) -> dict:
    """Ready when the version can be served now: servable, files intact, session loaded."""
    target = await inference.target(principal, name, requested_version(version))
    return {"name": name, "version": str(target.version.version), "ready": True}
