"""The KServe / Open Inference Protocol v2 REST API, with the binary tensor data extension."""

import json
import math
import zlib
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    SERVING_SECURITY,
    CallerDep,
    InferenceDep,
    SessionDep,
    SettingsDep,
    parse_body,
    serving,
)
from api.routes.health import readiness
from api.routes.models import BATCH_SIZE_HEADER
from api.schemas.base import Name, VersionText
from core.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from core.services.registry import RegistryService, ServingTarget, positive_version
from ml.onnx_export import INPUT_NAME, OUTPUT_NAME

router = APIRouter(prefix="/v2", tags=["v2"])
# Inference, which `api.dispatch` serves ahead of the router.
serving_router = APIRouter(prefix="/v2", tags=["v2"])
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "onnxruntime_onnx"
# Binary tensor data is little-endian, whatever this host's byte order.
DATATYPES = {name: np.dtype(kind).newbyteorder("<") for name, kind in {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.items()}
MODEL_DATATYPES = {"float32": "FP32"}
# Request bodies the Triton client compresses on request (`request_compression_algorithm`).
CONTENT_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


# Empty parameters by a factory: pydantic deep-copies a mutable default on every request.
Parameters = Annotated[dict[str, Any], Field(default_factory=dict)]


# Bounds of a request's names and lists: far above what a model of this service takes.
MAX_TENSORS, MAX_DIMENSIONS = 16, 16


class TensorIn(BaseModel):
    name: Name
    shape: Annotated[list[int], Field(max_length=MAX_DIMENSIONS)]
    datatype: Name
    parameters: Parameters
    data: Any = None


class OutputRequest(BaseModel):
    name: Name
    parameters: Parameters


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Name | None = None
    parameters: Parameters
    inputs: Annotated[list[TensorIn], Field(max_length=MAX_TENSORS)]
    outputs: Annotated[list[OutputRequest], Field(max_length=MAX_TENSORS)] | None = None


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
    target = await inference.target(principal, name, _version(version))
    return {"name": name, "version": str(target.version.version), "ready": True}


# Served by `api.dispatch`: the request alone, its headers read here and documented below.
INFER_OPENAPI = {**SERVING_SECURITY, "parameters": [
    {"name": HEADER_LENGTH, "in": "header", "required": False, "schema": {"type": "integer"},
     "description": "length of the JSON header when binary tensor data follows it"},
    {"name": "Content-Encoding", "in": "header", "required": False,
     "schema": {"type": "string", "enum": ["identity", *CONTENT_ENCODINGS]}}],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": InferRequest.model_json_schema()},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@serving_router.post("/models/{name}/infer", openapi_extra=INFER_OPENAPI)
@serving_router.post("/models/{name}/versions/{version}/infer", openapi_extra=INFER_OPENAPI)
async def infer(request: Request, name: str, version: VersionText | None = None) -> Response:
    principal, inference = await serving(request)
    max_bytes = inference.settings.max_body_mb * 1024 * 1024
    body = _decoded(await request.body(), request.headers.get("content-encoding"), max_bytes)
    infer_request, binary = _split_body(body, _header_length(request))
    target = await inference.target(principal, name, _version(version))
    batch = _input_batch(infer_request, binary, target)
    inference.check_batch_size(len(batch), "inputs[0].shape[0]")
    outputs, batch_size = await inference.run(target, batch)
    return _infer_response(infer_request, target, outputs,
                           {BATCH_SIZE_HEADER: str(batch_size)})


def _header_length(request: Request) -> int | None:
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise Invalid(f"{HEADER_LENGTH}: expected a whole number of bytes, received {value!r}",
                      [{"field": HEADER_LENGTH, "value": value}])
    return int(value)


def _version(value: str | None) -> int | None:
    return None if value is None else positive_version(value)


def _decoded(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The body uncompressed, never past the body size cap (a small bomb stays small)."""
    if encoding in (None, "identity"):
        return body
    if encoding not in CONTENT_ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding: expected one of identity, {', '.join(CONTENT_ENCODINGS)}, "
            f"received {encoding!r}", [{"field": "Content-Encoding", "value": encoding}])
    decompressor = zlib.decompressobj(CONTENT_ENCODINGS[encoding])
    try:
        decoded = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise Invalid(f"body: not valid {encoding} data ({error})",
                      [{"field": "body", "value": None}]) from None
    if len(decoded) > max_bytes:
        raise PayloadTooLarge(f"body: more than {max_bytes} bytes once uncompressed",
                              [{"field": "body", "value": None}])
    return decoded


def _split_body(body: bytes, header_length: int | None) -> tuple[InferRequest, bytes]:
    """The JSON header and the binary tensor data that follows it, if any."""
    if header_length is not None and not 0 <= header_length <= len(body):
        raise Invalid(f"{HEADER_LENGTH}: expected at most the body's {len(body)} bytes, "
                      f"received {header_length}",
                      [{"field": HEADER_LENGTH, "value": header_length}])
    split = len(body) if header_length is None else header_length
    return parse_body(InferRequest, body[:split]), body[split:]


def _input_batch(request: InferRequest, binary: bytes, target: ServingTarget) -> np.ndarray:
    """The request's one input tensor as the model's float32 batch, checked field by field."""
    input_shape = target.card["input"]["shape"]
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        names = [tensor.name for tensor in request.inputs]
        raise Invalid(f"inputs: expected one tensor named '{INPUT_NAME}', received {names}",
                      [{"field": "inputs", "value": names}])
    tensor = request.inputs[0]
    if tensor.datatype not in DATATYPES:
        raise Invalid(f"inputs[0].datatype: expected one of {', '.join(DATATYPES)}, received "
                      f"{tensor.datatype!r}", [{"field": "inputs[0].datatype",
                                                "value": tensor.datatype}])
    if (len(tensor.shape) < 1 or min(tensor.shape) < 0 or tensor.shape[0] < 1
            or math.prod(tensor.shape[1:]) != math.prod(input_shape)):
        raise Invalid(f"inputs[0].shape: expected [-1, {', '.join(map(str, input_shape))}], "
                      f"received {tensor.shape}", [{"field": "inputs[0].shape",
                                                    "value": tensor.shape}])
    dtype = DATATYPES[tensor.datatype]
    count = math.prod(tensor.shape)
    if "binary_data_size" in tensor.parameters:
        size = tensor.parameters["binary_data_size"]
        if size != len(binary) or size != count * dtype.itemsize:
            raise Invalid(f"inputs[0].parameters.binary_data_size: expected {count} "
                          f"{tensor.datatype} values ({count * dtype.itemsize} bytes) in the "
                          f"{len(binary)} bytes after the header, received {size}",
                          [{"field": "inputs[0].parameters.binary_data_size", "value": size}])
        values = np.frombuffer(binary, dtype=dtype)
    else:
        try:
            values = np.asarray(tensor.data, dtype=dtype).reshape(-1)
        except (ValueError, TypeError):
            values = None
        if values is None or values.size != count:
            raise Invalid(f"inputs[0].data: expected {count} {tensor.datatype} values for shape "
                          f"{tensor.shape}", [{"field": "inputs[0].data", "value": None}])
    batch = values.astype(np.float32, copy=False).reshape(tensor.shape[0], *input_shape)
    if not np.isfinite(batch).all():
        raise Invalid("inputs[0].data: contains NaN or infinite values",
                      [{"field": "inputs[0].data", "value": None}])
    return batch


def _infer_response(request: InferRequest, target: ServingTarget, outputs: np.ndarray,
                    headers: dict[str, str]) -> Response:
    requested = request.outputs or [OutputRequest(name=OUTPUT_NAME)]
    for index, output in enumerate(requested):
        if output.name != OUTPUT_NAME:
            raise Invalid(f"outputs[{index}].name: expected '{OUTPUT_NAME}', received "
                          f"{output.name!r}", [{"field": f"outputs[{index}].name",
                                                "value": output.name}])
    binary_default = bool(request.parameters.get("binary_data_output", False))
    outputs = np.ascontiguousarray(outputs, dtype="<f4")
    tensors, chunks = [], []
    for output in requested:
        tensor = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(outputs.shape)}
        if output.parameters.get("binary_data", binary_default):
            chunks.append(outputs.tobytes())
            tensor["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            tensor["data"] = outputs.reshape(-1).tolist()
        tensors.append(tensor)
    answer = {"model_name": target.model, "model_version": str(target.version.version),
              "outputs": tensors}
    if request.id is not None:
        answer["id"] = request.id
    header = json.dumps(answer, separators=(",", ":")).encode()
    if not chunks:
        return Response(header, media_type="application/json", headers=headers)
    return Response(b"".join([header, *chunks]), media_type="application/octet-stream",
                    headers={**headers, HEADER_LENGTH: str(len(header))})
