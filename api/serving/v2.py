"""`POST /v2/models/{name}[/versions/{version}]/infer`: inference in the KServe / Open Inference
Protocol v2, with its binary tensor data extension."""

import json
import math
import zlib
from typing import Annotated, Any

import numpy as np
from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from api.schemas.base import Name, VersionText
from api.serving.request import BATCH_SIZE_HEADER, SERVING_SECURITY, ServingRequest, parse_body
from core.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from core.services.registry import ServingTarget, positive_version
from ml.onnx_export import INPUT_NAME, OUTPUT_NAME

HEADER_LENGTH = "Inference-Header-Content-Length"
# Binary tensor data is little-endian, whatever this host's byte order.
DATATYPES = {name: np.dtype(kind).newbyteorder("<") for name, kind in {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.items()}
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


# The headers the endpoint reads, and the body it parses itself, documented.
INFER_OPENAPI = {**SERVING_SECURITY, "parameters": [
    {"name": HEADER_LENGTH, "in": "header", "required": False, "schema": {"type": "integer"},
     "description": "length of the JSON header when binary tensor data follows it"},
    {"name": "Content-Encoding", "in": "header", "required": False,
     "schema": {"type": "string", "enum": ["identity", *CONTENT_ENCODINGS]}}],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": InferRequest.model_json_schema()},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


async def infer(request: ServingRequest, name: str, version: VersionText | None = None
                ) -> Response:
    inference = request.inference
    max_bytes = inference.settings.max_body_mb * 1024 * 1024
    body = _decoded(request.content, request.headers.get("content-encoding"), max_bytes)
    infer_request, binary = _split_body(body, _header_length(request))
    target = await inference.target(request.principal, name, requested_version(version))
    batch = _input_batch(infer_request, binary, target)
    inference.check_batch_size(len(batch), "inputs[0].shape[0]")
    outputs, batch_size = await inference.run(target, batch)
    return _infer_response(infer_request, target, outputs,
                           {BATCH_SIZE_HEADER: str(batch_size)})


def _header_length(request: ServingRequest) -> int | None:
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise Invalid(f"{HEADER_LENGTH}: expected a whole number of bytes, received {value!r}",
                      [{"field": HEADER_LENGTH, "value": value}])
    return int(value)


def requested_version(value: str | None) -> int | None:
    """The version a path names, or None for the one served by default."""
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
