"""The Open Inference Protocol V2 (KServe V2 REST) as ``docs/remote-detector.md`` fixes it for
this model, as pure functions over bytes and dicts (no Ray, no web framework): the metadata
document, the parsing and validation of an infer request in the JSON form or with the binary
tensor extension, and the response. Every malformed request raises :class:`ProtocolError` with
the HTTP status and a message for the ``{"error": ...}`` body; nothing malformed reaches the
model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.remote.wire import (
    BINARY_HEADER,
    CONFIG_PARAMETER,
    INPUT_DATATYPE,
    INPUT_NAME,
    MAX_BYTES_PARAMETER,
    MAX_FACES_PARAMETER,
    OUTPUT_DATATYPE,
    OUTPUT_NAME,
)


class ProtocolError(Exception):
    """A request the server refuses: ``status`` (400, 404, 503) and a message for the body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ModelSpec:
    """What the server says about the model it serves."""

    name: str
    version: str
    input_size: int
    config_json: str  # detector.config.ModelConfig.to_json() of the served weights
    # The request limits, advertised so that clients split their crops to fit (0: unstated).
    max_faces_per_request: int = 0
    max_request_bytes: int = 0

    def metadata(self) -> dict[str, Any]:
        size = self.input_size
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "pytorch",
            "inputs": [{"name": INPUT_NAME, "datatype": INPUT_DATATYPE,
                        "shape": [-1, 3, size, size]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": OUTPUT_DATATYPE, "shape": [-1]}],
            "parameters": {
                CONFIG_PARAMETER: self.config_json,
                "fake_prob": "calibrated",
                **({MAX_FACES_PARAMETER: self.max_faces_per_request}
                   if self.max_faces_per_request else {}),
                **({MAX_BYTES_PARAMETER: self.max_request_bytes}
                   if self.max_request_bytes else {}),
            },
        }  # fmt: skip


@dataclass(frozen=True)
class InferRequest:
    """A validated request: its id (echoed back) and the crops, uint8 ``[N, 3, S, S]``."""

    id: str | None
    faces: npt.NDArray[np.uint8]


def _bad(message: str) -> ProtocolError:
    return ProtocolError(400, message)


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    if header_length is None:
        return body, None
    try:
        size = int(header_length)
    except ValueError:
        raise _bad(f"{BINARY_HEADER} is not an integer: {header_length[:40]!r}") from None
    if not 0 < size <= len(body):
        raise _bad(f"{BINARY_HEADER} {size} does not fit a body of {len(body)} bytes")
    return body[:size], body[size:]


def _header(text: bytes) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(f"the request is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _bad("the request must be a JSON object")
    return header


def _shape(tensor: dict[str, Any], size: int, max_faces: int) -> tuple[int, int, int, int]:
    shape = tensor.get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 4
        and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise _bad(f"input {INPUT_NAME!r} needs a shape [N, 3, {size}, {size}], got {shape!r}")
    n, channels, height, width = shape
    if n < 0 or channels != 3 or height != size or width != size:
        raise _bad(f"input {INPUT_NAME!r} must have shape [N, 3, {size}, {size}] (this model's "
                   f"input size), got {shape}")
    if n > max_faces:
        raise _bad(f"at most {max_faces} faces per request, got {n}")
    return n, channels, height, width


def _json_data(data: object, count: int) -> npt.NDArray[np.uint8]:
    try:
        values = np.asarray(data)
    except ValueError:
        raise _bad(f"input {INPUT_NAME!r}: data is not a (nested) list of integers") from None
    if values.size != count:
        raise _bad(f"input {INPUT_NAME!r}: {values.size} values for a shape of {count}")
    if count and (values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255):
        raise _bad(f"input {INPUT_NAME!r}: UINT8 data must be integers in [0, 255]")
    return values.astype(np.uint8).reshape(-1)


def _binary_data(tensor: dict[str, Any], raw: bytes, count: int) -> npt.NDArray[np.uint8]:
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if "data" in tensor:
        raise _bad(f"input {INPUT_NAME!r} has both JSON data and binary data")
    if size != count or len(raw) != count:
        raise _bad(f"input {INPUT_NAME!r}: binary_data_size {size!r} and {len(raw)} binary bytes "
                   f"for a UINT8 tensor of {count} bytes")
    return np.frombuffer(raw, dtype=np.uint8)


def parse_infer(
    body: bytes, header_length: str | None, spec: ModelSpec, *, max_faces: int
) -> InferRequest:
    """The crops of a ``POST /v2/models/{name}/infer`` body (the JSON form, or the binary
    extension when ``header_length`` is the ``Inference-Header-Content-Length`` header)."""
    text, raw = _split_binary(body, header_length)
    header = _header(text)
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad("the request id must be a string")
    inputs = header.get("inputs")
    if not (isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict)):
        raise _bad(f"the request needs exactly one input, {INPUT_NAME!r}")
    tensor: dict[str, Any] = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise _bad(f"unknown input {tensor.get('name')!r}: this model takes {INPUT_NAME!r}")
    if tensor.get("datatype") != INPUT_DATATYPE:
        raise _bad(f"input {INPUT_NAME!r} must be {INPUT_DATATYPE}, got "
                   f"{tensor.get('datatype')!r}")
    outputs = header.get("outputs", [])
    if not isinstance(outputs, list) or any(
        not isinstance(o, dict) or o.get("name") != OUTPUT_NAME for o in outputs
    ):
        raise _bad(f"this model has one output, {OUTPUT_NAME!r}")
    shape = _shape(tensor, spec.input_size, max_faces)
    count = int(np.prod(shape))
    if raw is not None:
        flat = _binary_data(tensor, raw, count)
    elif "data" in tensor:
        flat = _json_data(tensor["data"], count)
    else:
        raise _bad(f"input {INPUT_NAME!r} has no data (neither JSON data nor binary_data_size)")
    return InferRequest(request_id, flat.reshape(shape))


def to_crops(faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``[N, 3, S, S]`` (the wire layout) → ``[N, S, S, 3]`` (what ``Classifier.predict`` takes)."""
    return np.ascontiguousarray(faces.transpose(0, 2, 3, 1))


def infer_response(
    spec: ModelSpec, request_id: str | None, scores: npt.NDArray[np.floating[Any]]
) -> dict[str, Any]:
    """The response document; raises ``ValueError`` on a score that is not a probability (an
    error, never a verdict)."""
    p = np.asarray(scores, dtype=np.float32).reshape(-1)
    if not bool(np.all(np.isfinite(p) & (p >= 0.0) & (p <= 1.0))):
        raise ValueError("the model produced a score outside [0, 1]")
    out: dict[str, Any] = {
        "model_name": spec.name,
        "model_version": spec.version,
        "outputs": [{"name": OUTPUT_NAME, "datatype": OUTPUT_DATATYPE, "shape": [len(p)],
                     "data": [float(x) for x in p]}],
    }
    if request_id is not None:
        out["id"] = request_id
    return out
