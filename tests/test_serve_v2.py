"""``deepfake-bot serve`` for real: Ray Serve started by the test on 127.0.0.1 (the session's
``v2_server``), spoken to over raw HTTP as ``docs/remote-detector.md`` says, and its scores
compared with the local ``Classifier.predict`` on the same uint8 crops."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import pytest
import requests

from detector.checkpoints import load_checkpoint
from detector.config import ModelConfig
from detector.factory import build_classifier
from detector.model import Classifier

from .serve_process import V2Server

pytestmark = pytest.mark.slow
S = 64  # TINY_CONFIG's input size
TIMEOUT = 60


@pytest.fixture(scope="module")
def local(tiny_checkpoint: Path) -> Classifier:
    return build_classifier(tiny_checkpoint, precision="fp32", threads=1)


def _crops(n: int, seed: int) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (n, S, S, 3), dtype=np.uint8)


def _nchw(crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2))


def _tensor(faces: npt.NDArray[np.uint8], **extra: Any) -> dict[str, Any]:
    return {"name": "faces", "datatype": "UINT8", "shape": list(faces.shape), **extra}


def infer_json(server: V2Server, crops: npt.NDArray[np.uint8], rid: str) -> requests.Response:
    faces = _nchw(crops)
    body = {"id": rid, "inputs": [_tensor(faces, data=faces.reshape(-1).tolist())],
            "outputs": [{"name": "fake_prob"}]}
    return requests.post(server.model_url("/infer"), json=body, timeout=TIMEOUT)


def infer_binary(
    server: V2Server, crops: npt.NDArray[np.uint8], rid: str, name: str | None = None
) -> requests.Response:
    faces = _nchw(crops)
    raw = faces.tobytes()
    header = json.dumps({"id": rid, "inputs": [
        _tensor(faces, parameters={"binary_data_size": len(raw)})]}).encode()
    url = server.model_url("/infer") if name is None else f"{server.url}/v2/models/{name}/infer"
    return requests.post(url, data=header + raw, timeout=TIMEOUT, headers={
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream"})


def _scores(response: requests.Response, rid: str) -> npt.NDArray[np.float64]:
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["model_name"] == "deepfake-xception" and doc["id"] == rid
    (out,) = doc["outputs"]
    assert out["name"] == "fake_prob" and out["datatype"] == "FP32"
    assert out["shape"] == [len(out["data"])]
    return np.asarray(out["data"], dtype=np.float64)


def _stats(server: V2Server) -> dict[str, Any]:
    doc: dict[str, Any] = requests.get(server.model_url("/stats"), timeout=TIMEOUT).json()
    stats: dict[str, Any] = doc["model_stats"][0]
    return stats


def test_health_and_readiness(v2_server: V2Server) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{v2_server.model_name}/ready"):
        assert requests.get(v2_server.url + path, timeout=TIMEOUT).status_code == 200, path
    missing = requests.get(f"{v2_server.url}/v2/models/other/ready", timeout=TIMEOUT)
    assert missing.status_code == 404 and "other" in missing.json()["error"]


def test_ray_stays_on_loopback_but_for_serves_replica_grpc(v2_server: V2Server) -> None:
    """GCS, raylet, agents, the proxy: loopback only. Ray Serve 2.60's replicas open their
    inter-deployment gRPC server on ``[::]:0`` (hard-coded, docs/deploy-ray.md says so)."""
    procs = psutil.Process(v2_server.process.pid).children(recursive=True)
    wide = []
    for proc in procs:
        try:
            listening = [c for c in proc.net_connections("inet") if c.status == "LISTEN"]
            name = proc.name()
        except psutil.NoSuchProcess:
            continue
        for conn in listening:
            if conn.laddr.ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1"):
                wide.append((name, conn.laddr.ip))
    assert procs, "no Ray processes under the serve command"
    assert all("ServeRepli" in name for name, _ in wide), wide


def test_metadata_carries_the_served_config(v2_server: V2Server, tiny_checkpoint: Path) -> None:
    doc = requests.get(v2_server.model_url(), timeout=TIMEOUT).json()
    loaded = load_checkpoint(tiny_checkpoint)
    assert doc["name"] == "deepfake-xception" and doc["platform"] == "pytorch"
    assert loaded.sha256 and loaded.sha256.startswith(doc["versions"][0])
    assert doc["inputs"] == [{"name": "faces", "datatype": "UINT8", "shape": [-1, 3, S, S]}]
    assert doc["outputs"] == [{"name": "fake_prob", "datatype": "FP32", "shape": [-1]}]
    assert doc["parameters"]["fake_prob"] == "calibrated"
    served = ModelConfig.from_json(doc["parameters"]["deepfake_bot_config"])
    assert served == loaded.config


def test_json_and_binary_give_the_local_scores(v2_server: V2Server, local: Classifier) -> None:
    crops = _crops(5, seed=1)
    expected = local.predict(crops)
    by_json = _scores(infer_json(v2_server, crops, "json-1"), "json-1")
    by_binary = _scores(infer_binary(v2_server, crops, "bin-1"), "bin-1")
    np.testing.assert_allclose(by_json, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(by_binary, expected, atol=1e-4, rtol=0)


def test_a_request_larger_than_a_batch_is_scored_whole(
    v2_server: V2Server, local: Classifier
) -> None:
    crops = _crops(21, seed=2)  # the fixture's batches hold 16 faces
    got = _scores(infer_binary(v2_server, crops, "big"), "big")
    np.testing.assert_allclose(got, local.predict(crops), atol=1e-4, rtol=0)


def test_concurrent_requests_are_batched_and_mapped_back(
    v2_server: V2Server, local: Classifier
) -> None:
    sizes = [1, 3, 2, 1, 4, 2, 3, 1]
    crops = [_crops(n, seed=100 + i) for i, n in enumerate(sizes)]
    before = _stats(v2_server)
    results: dict[int, npt.NDArray[np.float64]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(sizes))

    def send(i: int) -> None:
        try:
            barrier.wait(TIMEOUT)
            send_one = infer_binary if i % 2 else infer_json
            results[i] = _scores(send_one(v2_server, crops[i], f"r{i}"), f"r{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * TIMEOUT)
    assert not errors, errors
    for i, got in results.items():
        np.testing.assert_allclose(got, local.predict(crops[i]), atol=1e-4, rtol=0, err_msg=f"r{i}")
    after = _stats(v2_server)
    assert after["inference_count"] - before["inference_count"] == sum(sizes)
    passes = after["execution_count"] - before["execution_count"]
    assert passes < len(sizes), f"{passes} forward passes for {len(sizes)} requests: no batching"
    largest = max(b["batch_size"] for b in after["batch_stats"])
    assert largest > max(sizes), after["batch_stats"]


def _bad(v2_server: V2Server, body: dict[str, Any]) -> str:
    response = requests.post(v2_server.model_url("/infer"), json=body, timeout=TIMEOUT)
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]
    return message


def test_malformed_requests_are_400s(v2_server: V2Server) -> None:
    faces = _nchw(_crops(1, seed=3))
    data = faces.reshape(-1).tolist()
    wrong_size = np.zeros((1, 3, 32, 32), np.uint8)
    assert "shape" in _bad(v2_server, {"inputs": [_tensor(wrong_size, data=[0] * wrong_size.size)]})
    assert "UINT8" in _bad(v2_server, {"inputs": [
        {**_tensor(faces, data=data), "datatype": "FP32"}]})
    assert "faces" in _bad(v2_server, {"inputs": [{**_tensor(faces, data=data), "name": "x"}]})
    assert "values" in _bad(v2_server, {"inputs": [_tensor(faces, data=data[:-1])]})
    assert "[0, 255]" in _bad(v2_server, {"inputs": [_tensor(faces, data=[256] * len(data))]})
    assert "output" in _bad(v2_server, {"inputs": [_tensor(faces, data=data)],
                                        "outputs": [{"name": "logits"}]})
    raw = faces.tobytes()
    header = json.dumps({"inputs": [_tensor(faces, parameters={"binary_data_size": 7})]}).encode()
    short = requests.post(v2_server.model_url("/infer"), data=header + raw, timeout=TIMEOUT,
                          headers={"Inference-Header-Content-Length": str(len(header))})
    assert short.status_code == 400 and "binary_data_size" in short.json()["error"]
    not_json = requests.post(v2_server.model_url("/infer"), data=b"{nope", timeout=TIMEOUT)
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]


def test_a_body_over_the_limit_is_refused(v2_server: V2Server) -> None:
    crops = _crops(90, seed=4)  # 90 x 12,288 bytes > the fixture's 1 MiB
    response = infer_binary(v2_server, crops, "huge")
    assert response.status_code == 400 and "exceeds" in response.json()["error"]


def test_an_unknown_model_is_a_404(v2_server: V2Server) -> None:
    response = infer_binary(v2_server, _crops(1, seed=5), "x", name="other-model")
    assert response.status_code == 404 and "other-model" in response.json()["error"]
    meta = requests.get(f"{v2_server.url}/v2/models/other-model", timeout=TIMEOUT)
    assert meta.status_code == 404 and set(meta.json()) == {"error"}
