"""The Open Inference Protocol V2 (KServe V2 REST) messages of ``docs/remote-detector.md``, as
pure functions: an infer request for a batch of crops (JSON or the binary tensor extension), the
scores out of an infer response, and the model's config out of its metadata. No I/O here."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.config import ModelConfig
from detector.errors import DetectorError, RemoteModelRefused

# The contract's names (docs/remote-detector.md), shared with the server (detector.serving).
INPUT_NAME = "faces"
OUTPUT_NAME = "fake_prob"
INPUT_DATATYPE = "UINT8"
OUTPUT_DATATYPE = "FP32"
CONFIG_PARAMETER = "deepfake_bot_config"
MAX_FACES_PARAMETER = "max_faces_per_request"
MAX_BYTES_PARAMETER = "max_request_bytes"
BINARY_HEADER = "Inference-Header-Content-Length"
_FLOAT_TYPES = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2"}


class BadAnswer(DetectorError):
    """The server answered an infer request with something that is not a score per crop (wrong
    count, NaN, out of [0, 1], unknown layout): a bug somewhere, never a verdict."""


def to_wire(crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The pipeline's ``[K, S, S, 3]`` crops as the contract's ``[K, 3, S, S]``, contiguous."""
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"expected [K, S, S, 3] uint8 crops, got {crops.dtype} {crops.shape}")
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2))


def infer_request(
    faces: npt.NDArray[np.uint8], request_id: str, *, binary: bool = True
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``POST /v2/models/{name}/infer`` for ``faces`` ``[N, 3, S, S]``."""
    tensor: dict[str, Any] = {
        "name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [int(d) for d in faces.shape],
    }  # fmt: skip
    head: dict[str, Any] = {"id": request_id, "inputs": [tensor],
                            "outputs": [{"name": OUTPUT_NAME}]}  # fmt: skip
    if not binary:
        tensor["data"] = faces.ravel().tolist()
        return json.dumps(head, separators=(",", ":")).encode(), {
            "Content-Type": "application/json"
        }
    raw = faces.tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps(head, separators=(",", ":")).encode()
    return header + raw, {
        "Content-Type": "application/octet-stream",
        BINARY_HEADER: str(len(header)),
    }


def _split_binary(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    if header_length is None:
        return json.loads(body), b""
    try:
        n = int(header_length)
    except ValueError:
        raise BadAnswer(f"bad {BINARY_HEADER}: {header_length!r}") from None
    if not 0 <= n <= len(body):
        raise BadAnswer(f"{BINARY_HEADER} {n} beyond a {len(body)}-byte body")
    return json.loads(body[:n]), body[n:]


def read_scores(
    body: bytes, count: int, header_length: str | None = None
) -> npt.NDArray[np.float64]:
    """P(fake) ``[count]`` from an infer response (JSON, or JSON + binary outputs when the
    response carries ``Inference-Header-Content-Length``). Accepts output shapes ``[N]`` and
    ``[N, 1]`` and ignores fields it does not know; anything else raises :class:`BadAnswer`."""
    try:
        head, raw = _split_binary(body, header_length)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadAnswer(f"infer response is not JSON: {exc}") from None
    outputs = head.get("outputs") if isinstance(head, dict) else None
    if not isinstance(outputs, list):
        raise BadAnswer("infer response without an outputs list")
    found = [o for o in outputs if isinstance(o, dict) and o.get("name") == OUTPUT_NAME]
    if len(found) != 1:
        raise BadAnswer(f"infer response without exactly one {OUTPUT_NAME!r} output")
    out = found[0]
    shape = out.get("shape")
    if shape not in ([count], [count, 1]):
        raise BadAnswer(f"{OUTPUT_NAME} shape {shape!r} for {count} crop(s)")
    datatype = out.get("datatype", OUTPUT_DATATYPE)
    params = out.get("parameters") or {}
    try:
        if isinstance(params, dict) and "binary_data_size" in params:
            if datatype not in _FLOAT_TYPES:
                raise BadAnswer(f"{OUTPUT_NAME} datatype {datatype!r}")
            size = int(params["binary_data_size"])
            if size != len(raw):  # the only binary output we ask for
                raise BadAnswer(f"binary {OUTPUT_NAME} of {len(raw)} bytes, said {size}")
            values = np.frombuffer(raw, dtype=_FLOAT_TYPES[datatype]).astype(np.float64)
        else:
            values = np.asarray(out.get("data"), dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise BadAnswer(f"{OUTPUT_NAME} data unreadable: {exc}") from None
    if values.shape != (count,):
        raise BadAnswer(f"{values.size} score(s) for {count} crop(s)")
    if not np.all(np.isfinite(values)) or np.any(values < 0.0) or np.any(values > 1.0):
        raise BadAnswer(f"{OUTPUT_NAME} outside [0, 1] or not a number: {values.tolist()}")
    return values


def model_config(metadata: Any, model: str) -> ModelConfig:
    """The served weights' config from ``GET /v2/models/{name}``, after checking the model's
    one input is ``faces`` UINT8 ``[-1, 3, S, S]`` with S its input size. Raises
    :class:`RemoteModelRefused` naming what is missing or wrong."""
    if not isinstance(metadata, dict):
        raise RemoteModelRefused(f"model {model!r}: metadata is not a JSON object")
    params = metadata.get("parameters")
    text = params.get(CONFIG_PARAMETER) if isinstance(params, dict) else None
    if not isinstance(text, str):
        raise RemoteModelRefused(
            f"model {model!r}: metadata lacks parameters.{CONFIG_PARAMETER} (the served "
            "weights' ModelConfig as JSON), so bands could not match the local path"
        )
    try:
        config = ModelConfig.from_json(text)
    except (ValueError, TypeError) as exc:
        raise RemoteModelRefused(f"model {model!r}: bad {CONFIG_PARAMETER}: {exc}") from None
    inputs = metadata.get("inputs")
    by_name = {i.get("name"): i for i in inputs if isinstance(i, dict)} if isinstance(
        inputs, list) else {}  # fmt: skip
    spec = by_name.get(INPUT_NAME)
    if spec is None:
        raise RemoteModelRefused(f"model {model!r} has no input named {INPUT_NAME!r}")
    if spec.get("datatype") != INPUT_DATATYPE:
        raise RemoteModelRefused(
            f"model {model!r}: input {INPUT_NAME!r} is {spec.get('datatype')!r}, not UINT8"
        )
    size = config.input_size
    shape = spec.get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and shape[1:] == [3, size, size]):
        raise RemoteModelRefused(
            f"model {model!r}: input {INPUT_NAME!r} shape {shape!r}, expected "
            f"[-1, 3, {size}, {size}] for its config's input size {size}"
        )
    if not (shape[0] == -1 or (isinstance(shape[0], int) and shape[0] > 0)):
        raise RemoteModelRefused(f"model {model!r}: batch dimension {shape[0]!r}")
    return config


# Room left in a request for its JSON header (id, names, shape) beside the tensor.
_HEADER_ROOM = 4096


def faces_per_request(metadata: Any, input_size: int, *, binary: bool, cap: int) -> int:
    """How many crops one infer request may carry: at most ``cap``, and within the
    ``max_faces_per_request`` and ``max_request_bytes`` the server's metadata advertises (a
    server that states neither gets ``cap``). JSON counts 4 bytes per value ("255,"), its worst
    case."""
    params = metadata.get("parameters") if isinstance(metadata, dict) else None
    params = params if isinstance(params, dict) else {}
    n = cap
    faces = params.get(MAX_FACES_PARAMETER)
    if isinstance(faces, int) and not isinstance(faces, bool) and faces > 0:
        n = min(n, faces)
    limit = params.get(MAX_BYTES_PARAMETER)
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        per_face = 3 * input_size * input_size * (1 if binary else 4)
        n = min(n, max(1, (limit - _HEADER_ROOM) // per_face))
    return max(1, n)
