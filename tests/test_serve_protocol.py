"""The serving wing without Ray: the V2 request parsing and validation, the metadata and response
documents (``detector.serving.protocol``), and the options the CLI and Serve config files build
(``detector.serving.options`` and ``commands``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bot.main import build_parser
from detector.serving.commands import options_from_args
from detector.serving.options import ServeOptions, gpus_per_replica, scorer_deployment_options
from detector.serving.protocol import (
    ModelSpec,
    ProtocolError,
    infer_response,
    parse_infer,
    to_crops,
)

from .conftest import TINY_CONFIG

SPEC = ModelSpec("deepfake-xception", "abc123", 64, TINY_CONFIG.to_json())
FACES = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)


def _json_body(faces: np.ndarray = FACES, **tensor: Any) -> bytes:
    t = {"name": "faces", "datatype": "UINT8", "shape": list(faces.shape),
         "data": faces.reshape(-1).tolist(), **tensor}
    return json.dumps({"id": "r1", "inputs": [t]}).encode()


def _binary_body(faces: np.ndarray = FACES, size: int | None = None) -> tuple[bytes, str]:
    raw = faces.tobytes()
    header = json.dumps({"inputs": [{
        "name": "faces", "datatype": "UINT8", "shape": list(faces.shape),
        "parameters": {"binary_data_size": len(raw) if size is None else size}}]}).encode()
    return header + raw, str(len(header))


def _refused(body: bytes, header: str | None = None, max_faces: int = 8) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_infer(body, header, SPEC, max_faces=max_faces)
    assert info.value.status == 400
    return info.value


def test_json_and_binary_forms_give_the_same_crops() -> None:
    by_json = parse_infer(_json_body(), None, SPEC, max_faces=8)
    body, header = _binary_body()
    by_binary = parse_infer(body, header, SPEC, max_faces=8)
    assert by_json.id == "r1" and by_binary.id is None
    np.testing.assert_array_equal(by_json.faces, FACES)
    np.testing.assert_array_equal(by_binary.faces, FACES)
    np.testing.assert_array_equal(to_crops(FACES), FACES.transpose(0, 2, 3, 1))


def test_nested_json_data_is_accepted() -> None:
    body = _json_body(data=FACES.tolist())
    np.testing.assert_array_equal(parse_infer(body, None, SPEC, max_faces=8).faces, FACES)


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        ({"shape": [2, 3, 32, 32]}, "shape"),
        ({"shape": [2, 64, 64, 3]}, "shape"),
        ({"shape": "2,3,64,64"}, "shape"),
        ({"datatype": "FP32"}, "UINT8"),
        ({"name": "image"}, "unknown input"),
        ({"data": [1, 2, 3]}, "values"),
        ({"data": [0.5] * FACES.size}, "integers"),
        ({"data": [-1] * FACES.size}, "[0, 255]"),
    ],
)
def test_malformed_tensors_are_refused(tensor: dict[str, Any], words: str) -> None:
    assert words in _refused(_json_body(**tensor)).message


def test_malformed_bodies_are_refused() -> None:
    assert "JSON" in _refused(b"{not json").message
    assert "object" in _refused(b"[1, 2]").message
    assert "exactly one input" in _refused(b'{"inputs": []}').message
    assert "at most 1 faces" in _refused(_json_body(), max_faces=1).message
    no_data = json.dumps({"inputs": [{"name": "faces", "datatype": "UINT8",
                                      "shape": [1, 3, 64, 64]}]}).encode()
    assert "no data" in _refused(no_data).message
    outputs = json.loads(_json_body())
    outputs["outputs"] = [{"name": "logits"}]
    assert "fake_prob" in _refused(json.dumps(outputs).encode()).message


def test_binary_sizes_must_agree() -> None:
    body, header = _binary_body(size=10)
    assert "binary_data_size" in _refused(body, header).message
    body, header = _binary_body()
    assert "binary" in _refused(body[:-1], header).message
    assert "integer" in _refused(body, "ten").message
    assert "does not fit" in _refused(body, str(len(body) + 1)).message


def test_metadata_follows_the_contract() -> None:
    meta = SPEC.metadata()
    assert meta["inputs"][0] == {"name": "faces", "datatype": "UINT8", "shape": [-1, 3, 64, 64]}
    assert meta["outputs"][0]["name"] == "fake_prob" and meta["versions"] == ["abc123"]
    assert meta["parameters"]["fake_prob"] == "calibrated"
    assert meta["parameters"]["deepfake_bot_config"] == TINY_CONFIG.to_json()


def test_the_response_refuses_what_is_not_a_probability() -> None:
    doc = infer_response(SPEC, "r1", np.array([0.25, 1.0]))
    assert doc["id"] == "r1" and doc["outputs"][0]["shape"] == [2]
    assert doc["outputs"][0]["data"] == [0.25, 1.0]
    for bad in (np.nan, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            infer_response(SPEC, None, np.array([0.5, bad]))


def test_the_cli_flags_become_options() -> None:
    args = build_parser().parse_args([
        "serve", "--port", "9000", "--model-name", "m", "--max-batch-size", "8",
        "--batch-wait-ms", "25", "--min-replicas", "1", "--max-replicas", "4",
        "--num-cpus", "2", "--max-request-mb", "2"])
    options = options_from_args(args)
    assert (options.model_name, options.max_batch_size, options.batch_wait_s) == ("m", 8, 0.025)
    assert (options.min_replicas, options.max_replicas, options.torch_threads) == (1, 4, 2)
    assert options.max_request_bytes == 2 * 1024 * 1024
    fixed = options_from_args(build_parser().parse_args(["serve", "--replicas", "3"]))
    assert (fixed.min_replicas, fixed.max_replicas) == (3, 3)
    with pytest.raises(ValueError, match="replicas"):
        options_from_args(build_parser().parse_args(["serve", "--min-replicas", "0"]))


def test_deployment_options_scale_and_place() -> None:
    auto = scorer_deployment_options(ServeOptions(min_replicas=1, max_replicas=4), 1.0)
    assert auto["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4,
                                          "target_ongoing_requests": 2.0}
    assert auto["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0}
    fixed = scorer_deployment_options(ServeOptions(min_replicas=2, max_replicas=2), 0.0)
    assert fixed["num_replicas"] == 2 and "num_gpus" not in fixed["ray_actor_options"]
    assert fixed["max_ongoing_requests"] >= ServeOptions().max_batch_size
    assert gpus_per_replica(ServeOptions(), 0.0) == 0.0
    assert gpus_per_replica(ServeOptions(), 2.0) == 1.0
    assert gpus_per_replica(ServeOptions(num_gpus=0.5), 0.0) == 0.5


def test_serve_config_args_are_typed_and_checked() -> None:
    options = ServeOptions.from_args({"weights": "/m/w.safetensors", "max_batch_size": "16",
                                      "batch_wait_s": "0.02", "num_gpus": 1, "threads": "4"})
    assert str(options.weights) == "/m/w.safetensors" and options.max_batch_size == 16
    assert options.batch_wait_s == 0.02 and options.num_gpus == 1.0 and options.threads == 4
    with pytest.raises(ValueError, match="unknown serve args"):
        ServeOptions.from_args({"max_batch": 4})
