"""The remote backend against the real Ray Serve deployment (``deepfake-bot serve`` on
127.0.0.1, the session's ``v2_server``): the client of one helper and the server of another,
built from the same contract (docs/remote-detector.md), must agree with each other and with the
local backend — same P(fake) within 1e-4 in fp32 on the same pictures, same bands, same config —
in both encodings, through the pipeline, the async service and ``check``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from detector.checkpoints import load_classifier
from detector.errors import RemoteModelRefused
from detector.finders import make_finder
from detector.model import Classifier, RuntimeOptions
from detector.pipeline import Pipeline
from detector.remote import RemoteClassifier, RemoteOptions
from detector.service import DetectorService

from .conftest import REPO, SAMPLES
from .serve_process import V2Server


@pytest.fixture()
def local_classifier(tiny_checkpoint: Path) -> Classifier:
    return load_classifier(tiny_checkpoint, options=RuntimeOptions("fp32", channels_last=False))


@pytest.fixture(params=[True, False], ids=["binary", "json"])
def remote(request: pytest.FixtureRequest, v2_server: V2Server) -> Iterator[RemoteClassifier]:
    clf = RemoteClassifier.connect(
        v2_server.url, v2_server.model_name, RemoteOptions(binary=request.param)
    )
    yield clf
    clf.close()


def _pictures() -> list[bytes]:
    return [(SAMPLES / "astronaut.jpg").read_bytes()]


def test_the_served_config_is_the_local_one(
    remote: RemoteClassifier, local_classifier: Classifier
) -> None:
    assert remote.config == local_classifier.config


def test_same_scores_as_the_local_backend_on_the_same_pictures(
    remote: RemoteClassifier, local_classifier: Classifier
) -> None:
    finder = make_finder()
    here = Pipeline(local_classifier, finder)
    there = Pipeline(remote, finder)
    for data in _pictures():
        a, b = here.analyze(data), there.analyze(data)
        assert len(a.faces) == len(b.faces) >= 1
        pa = np.array([f.p_fake for f in a.faces])
        pb = np.array([f.p_fake for f in b.faces])
        assert np.max(np.abs(pa - pb)) < 1e-4, (pa, pb)
        assert [f.band for f in a.faces] == [f.band for f in b.faces]
    # Many varied crops in one request (more than the server's batch of 16) and one at a time.
    rng = np.random.default_rng(3)
    size = local_classifier.config.input_size
    crops = rng.integers(0, 256, size=(40, size, size, 3), dtype=np.uint8)
    expected = local_classifier.predict(crops)
    assert np.max(np.abs(remote.predict(crops) - expected)) < 1e-4
    singles = np.concatenate([remote.predict(crops[i : i + 1]) for i in range(5)])
    assert np.max(np.abs(singles - expected[:5])) < 1e-4


def test_the_service_batches_requests_onto_the_server(
    remote: RemoteClassifier, local_classifier: Classifier
) -> None:
    finder = make_finder()
    data = _pictures()[0]
    want = Pipeline(local_classifier, finder).analyze(data).faces[0].p_fake

    async def many() -> list[float]:
        async with DetectorService(Pipeline(remote, finder)) as service:
            results = await asyncio.gather(*(service.analyze(data) for _ in range(6)))
        return [r.faces[0].p_fake for r in results]

    got = asyncio.run(many())
    assert max(abs(p - want) for p in got) < 1e-4


def test_an_unknown_model_name_is_refused_at_start(v2_server: V2Server) -> None:
    with pytest.raises(RemoteModelRefused):
        RemoteClassifier.connect(v2_server.url, "no-such-model", RemoteOptions(start_timeout_s=5))


def test_check_on_the_remote_backend_matches_check_here(
    v2_server: V2Server, tiny_checkpoint: Path
) -> None:
    images = [str(SAMPLES / "astronaut.jpg"), str(SAMPLES / "coffee.jpg")]
    runs = {}
    for name, flags in (
        ("local", ["--precision", "fp32", "--weights", str(tiny_checkpoint)]),
        ("remote", ["--backend", "remote", "--detector-url", v2_server.url]),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "bot.main", "check", "--json", *flags, *images],
            capture_output=True, text=True, cwd=REPO, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr  # coffee.jpg has no face
        runs[name] = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    local_rows, remote_rows = runs["local"], runs["remote"]
    assert [r["verdict"] for r in local_rows] == [r["verdict"] for r in remote_rows]
    assert local_rows[1]["error"] and remote_rows[1]["error"]
    assert abs(local_rows[0]["p_fake"] - remote_rows[0]["p_fake"]) < 1e-4
