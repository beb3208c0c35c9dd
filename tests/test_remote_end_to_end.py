"""The remote backend end to end: ``deepfake-bot check --backend remote`` in a subprocess
against the V2 stand-in serving the tiny checkpoint gives the local ``check``'s verdicts and
scores; a server that is busy or gone reaches a web user as the busy or unavailable answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from bot.core import ModelCard
from bot.main import main
from detector.checkpoints import load_classifier
from detector.model import Classifier, RuntimeOptions
from detector.pipeline import Pipeline
from detector.remote import RemoteClassifier, RemoteOptions
from detector.remote.wire import infer_request
from detector.service import DetectorService

from .conftest import REPO, SAMPLES
from .standins.v2_server import V2StandIn
from .standins.web_harness import running_web


@pytest.fixture()
def tiny_file_classifier(tiny_checkpoint: Path) -> Classifier:
    return load_classifier(tiny_checkpoint, options=RuntimeOptions("fp32"))


@pytest.fixture()
def server(tiny_file_classifier: Classifier) -> Iterator[V2StandIn]:
    with V2StandIn(tiny_file_classifier) as standin:
        yield standin


def _rows(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_check_remote_gives_the_local_verdicts(
    server: V2StandIn, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [str(SAMPLES / "astronaut.jpg"), str(SAMPLES / "coffee.jpg")]
    assert main(["check", "--json", "--precision", "fp32", "--weights", str(tiny_checkpoint),
                 *images]) == 1  # fmt: skip  (coffee has no face)
    local = _rows(capsys.readouterr().out)
    remote_rows = []
    for extra in ([], ["--detector-json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "bot.main", "check", "--json", "--backend", "remote",
             "--detector-url", server.url, "--detector-model", server.model, *extra, *images],
            capture_output=True, text=True, cwd=REPO, timeout=180,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        remote_rows.append(_rows(proc.stdout))
    assert {s.encoding for s in server.infers} == {"binary", "json"}
    for remote in remote_rows:
        assert [r["path"] for r in remote] == [r["path"] for r in local]
        a, b = local[0], remote[0]
        assert a["error"] is None and b["error"] is None
        assert a["verdict"] == b["verdict"]
        faces_a, faces_b = a["faces"], b["faces"]
        assert isinstance(faces_a, list) and isinstance(faces_b, list) and faces_a
        for fa, fb in zip(faces_a, faces_b, strict=True):
            assert fa["box"] == fb["box"] and fa["verdict"] == fb["verdict"]
            assert abs(fa["p_fake"] - fb["p_fake"]) <= 1e-4 + 1e-9  # both rounded to 4 places
        assert remote[1]["error"] == local[1]["error"]  # no face: found here, never sent


def test_check_remote_names_an_unreachable_server(server: V2StandIn) -> None:
    server.kill()
    proc = subprocess.run(
        [sys.executable, "-m", "bot.main", "check", "--backend", "remote", "--detector-url",
         server.url, "--detector-start-timeout", "0.5", str(SAMPLES)],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "not ready" in proc.stderr and "Traceback" not in proc.stderr


async def _post(url: str, data: bytes) -> tuple[int, dict[str, object], str | None]:
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/v1/check", data=data, headers={"Content-Type": "image/jpeg"}
    ) as r:
        return r.status, await r.json(), r.headers.get("Retry-After")


async def test_a_busy_or_dead_server_reaches_a_web_user(
    server: V2StandIn, tiny_file_classifier: Classifier, astronaut_jpeg: bytes
) -> None:
    options = RemoteOptions(retries=1, backoff_s=0.01, start_timeout_s=5)
    remote = RemoteClassifier.connect(server.url, server.model, options)
    pipeline = Pipeline(remote)
    detector = DetectorService(pipeline)
    card = ModelCard.from_config(remote.config)
    try:
        async with running_web(detector, card=card) as run:
            status, body, _ = await _post(run.url, astronaut_jpeg)
            assert status == 200 and body["verdict"] is not None

            server.fail(503, retry_after=3)
            status, body, retry = await _post(run.url, astronaut_jpeg)
            assert status == 503 and retry is not None
            error = body["error"]
            assert isinstance(error, dict) and error["code"] == "busy"

            server.kill()
            status, body, retry = await _post(run.url, astronaut_jpeg)
            assert status == 503 and retry == "30"
            error = body["error"]
            assert isinstance(error, dict) and error["code"] == "detector_unavailable"
            assert "127.0.0.1" not in str(error["message"])
    finally:
        remote.close()


def test_bench_backends_compares_local_and_remote_on_the_same_weights(
    server: V2StandIn, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "backends.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bot.main", "bench-backends", "--quick", "--precision", "fp32",
         "--threads", "1", "--weights", str(tiny_checkpoint), "--detector-url", server.url,
         "--server-cores", "1", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = out.read_text()
    assert report == proc.stdout.removesuffix("\n")  # print adds a newline
    gap = float(report.split("remote − local| = **")[1].split("**")[0])
    assert gap < 1e-4  # the stand-in serves the same tiny weights
    for row in ("network faces/s, batch 1 |", "network faces/s, batch 32 |", "end to end p50",
                "images/s, 32 concurrent", "network faces/s per core, batch 32"):
        assert row in report, row
    # Binary request sizes depend on the shape alone: the encoder's own size at 64 px.
    for n in (1, 8):
        body, _ = infer_request(np.zeros((n, 3, 64, 64), np.uint8), "bench", binary=True)
        assert f"| {n} | {len(body):,} |" in report
    assert len(server.infers) > 0 and {s.encoding for s in server.infers} == {"binary"}
