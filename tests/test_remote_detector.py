"""The remote detector backend (``detector.remote``) against the canned V2 stand-in
(``tests/standins/v2_server.py``), whose scores come from a real tiny ``Classifier``: the remote
P(fake) is the local one (both encodings, both output shapes, extra fields), bands match, start-up
refuses what it cannot use, and every failure maps to the contract's error (busy, unavailable, a
bug), with bounded retries counted at the server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from pydantic import ValidationError

from bot.settings import Settings
from detector.errors import (
    DetectorBusy,
    DetectorError,
    DetectorUnavailable,
    RemoteModelRefused,
)
from detector.model import Classifier
from detector.pipeline import Pipeline
from detector.remote import RemoteClassifier, RemoteOptions
from detector.remote.wire import BadAnswer

from .standins.v2_server import V2StandIn

FAST = RemoteOptions(timeout_s=5.0, connect_timeout_s=1.0, retries=2, backoff_s=0.01,
                     start_timeout_s=3.0)  # fmt: skip


@pytest.fixture()
def server(tiny_classifier: Classifier) -> Iterator[V2StandIn]:
    with V2StandIn(tiny_classifier) as standin:
        yield standin


def _crops(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _remote(server: V2StandIn, **changes: object) -> RemoteClassifier:
    options = RemoteOptions(**{**FAST.__dict__, **changes})
    return RemoteClassifier.connect(server.url, server.model, options)


# --- the same numbers as the local classifier --------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("shape", ["flat", "column"])
def test_remote_p_fake_is_the_local_one(
    server: V2StandIn, tiny_classifier: Classifier, binary: bool, shape: str
) -> None:
    server.output_shape = shape  # type: ignore[assignment]
    server.extra_fields = True  # unknown fields everywhere are ignored
    remote = _remote(server, binary=binary)
    try:
        assert remote.config == tiny_classifier.config
        crops = _crops(5)
        local = tiny_classifier.predict(crops)
        got = remote.predict(crops)
        assert got.dtype == np.float64 and got.shape == (5,)
        np.testing.assert_allclose(got, local, atol=1e-4, rtol=0)
        assert [remote.config.band(p) for p in got] == [tiny_classifier.config.band(p)
                                                       for p in local]  # fmt: skip
        (seen,) = server.infers
        assert seen.encoding == ("binary" if binary else "json")
        assert seen.shape == [5, 3, 64, 64]  # channels first on the wire
        assert remote.predict(_crops(0)).shape == (0,)
        assert len(server.infers) == 1  # no request for no crops
    finally:
        remote.close()


def test_a_remote_pipeline_gives_the_local_analysis(
    server: V2StandIn, tiny_classifier: Classifier, astronaut_jpeg: bytes
) -> None:
    local = Pipeline(tiny_classifier)
    remote = Pipeline(_remote(server), local.face_finder)
    a, b = local.analyze(astronaut_jpeg), remote.analyze(astronaut_jpeg)
    assert [f.box for f in a.faces] == [f.box for f in b.faces] and a.faces
    for fa, fb in zip(a.faces, b.faces, strict=True):
        assert abs(fa.p_fake - fb.p_fake) < 1e-4
        assert fa.band is fb.band
    assert a.verdict is b.verdict and a.model == b.model


# --- start-up ---------------------------------------------------------------------------------


def test_unknown_model_is_refused_at_start(server: V2StandIn) -> None:
    with pytest.raises(RemoteModelRefused, match="no model 'other-model'"):
        RemoteClassifier.connect(server.url, "other-model", FAST)


def test_metadata_without_the_config_is_refused(server: V2StandIn) -> None:
    meta = server.metadata()
    del meta["parameters"]["deepfake_bot_config"]
    server.metadata_override = meta
    with pytest.raises(RemoteModelRefused, match="deepfake_bot_config"):
        _remote(server)


def test_an_input_that_does_not_match_the_config_is_refused(server: V2StandIn) -> None:
    meta = server.metadata()
    meta["inputs"][0]["shape"] = [-1, 3, 299, 299]
    server.metadata_override = meta
    with pytest.raises(RemoteModelRefused, match=r"expected \[-1, 3, 64, 64\]"):
        _remote(server)
    meta["inputs"][0] = {"name": "faces", "datatype": "FP32", "shape": [-1, 3, 64, 64]}
    with pytest.raises(RemoteModelRefused, match="not UINT8"):
        _remote(server)


def test_start_waits_for_the_model_then_gives_up_at_the_deadline(server: V2StandIn) -> None:
    server.model_ready = False
    t0 = time.monotonic()
    with pytest.raises(DetectorUnavailable, match=r"not ready within 0\.5 s"):
        _remote(server, start_timeout_s=0.5)
    assert time.monotonic() - t0 < 3.0

    import threading

    threading.Timer(0.3, lambda: setattr(server, "model_ready", True)).start()
    _remote(server, start_timeout_s=5.0).close()  # became ready while waiting


def test_an_unreachable_server_is_refused_at_start(server: V2StandIn) -> None:
    server.kill()
    with pytest.raises(DetectorUnavailable, match="not ready") as caught:
        _remote(server, start_timeout_s=0.3)
    assert server.url in str(caught.value)
    assert "127.0.0.1" not in caught.value.user_message


# --- errors while scoring ---------------------------------------------------------------------


def test_503_is_busy_and_not_retried(server: V2StandIn) -> None:
    remote = _remote(server)
    server.fail(503, retry_after=2)
    with pytest.raises(DetectorBusy, match="Retry-After 2"):
        remote.predict(_crops(1))
    assert [s.status for s in server.infers] == [503]


def test_400_is_a_bug_not_retried_and_not_unavailable(server: V2StandIn) -> None:
    remote = _remote(server)
    server.fail(400, body={"error": "shape mismatch"})
    with pytest.raises(DetectorError, match="shape mismatch") as caught:
        remote.predict(_crops(1))
    assert type(caught.value) is DetectorError
    assert len(server.infers) == 1


def test_5xx_is_retried_a_bounded_number_of_times(server: V2StandIn) -> None:
    remote = _remote(server, retries=2)
    server.fail(500, times=1)
    assert remote.predict(_crops(2)).shape == (2,)  # second try answers
    assert [s.status for s in server.infers] == [500, 200]

    server.infers.clear()
    server.fail(502, times=10)
    with pytest.raises(DetectorUnavailable, match="HTTP 502") as caught:
        remote.predict(_crops(2))
    assert len(server.infers) == 3  # one try and two retries, then no more
    assert "127.0.0.1" not in caught.value.user_message


def test_a_model_gone_from_the_server_is_unavailable(server: V2StandIn) -> None:
    remote = _remote(server)
    server.fail(404)
    with pytest.raises(DetectorUnavailable, match="HTTP 404"):
        remote.predict(_crops(1))


def test_a_slow_server_times_out_once_without_retry(server: V2StandIn) -> None:
    remote = _remote(server, timeout_s=0.3)
    server.delay_s = 2.0
    t0 = time.monotonic()
    with pytest.raises(DetectorUnavailable, match="timed out"):
        remote.predict(_crops(1))
    assert time.monotonic() - t0 < 1.5
    assert len(server.infers) == 1
    server.delay_s = 0.0


def test_a_dead_server_is_unavailable_after_the_retries(server: V2StandIn) -> None:
    remote = _remote(server, retries=1)
    assert remote.predict(_crops(1)).shape == (1,)
    server.kill()
    with pytest.raises(DetectorUnavailable, match="unreachable after 2 tries") as caught:
        remote.predict(_crops(1))
    assert server.url in str(caught.value)
    assert "127.0.0.1" not in caught.value.user_message


@pytest.mark.parametrize(
    "scores",
    [[0.5], [0.5, 0.5, 0.5], [float("nan"), 0.5], [1.5, 0.5], [-0.1, 0.5], ["x", 0.5]],
    ids=["too-few", "too-many", "nan", "above-1", "below-0", "not-a-number"],
)
def test_a_wrong_answer_is_an_error_never_a_verdict(
    server: V2StandIn, scores: list[object]
) -> None:
    remote = _remote(server)
    server.scores_override = scores
    with pytest.raises(BadAnswer):
        remote.predict(_crops(2))
    assert len(server.infers) == 1  # not retried


# --- settings ---------------------------------------------------------------------------------


def test_remote_backend_needs_a_url() -> None:
    with pytest.raises(ValidationError, match="DETECTOR_BACKEND=remote needs DETECTOR_URL"):
        Settings(_env_file=None, detector_backend="remote")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="http"):
        Settings(_env_file=None, detector_backend="remote",  # type: ignore[call-arg]
                 detector_url="gpu-1:8000")  # fmt: skip
    ok = Settings(_env_file=None, detector_backend="remote",  # type: ignore[call-arg]
                  detector_url="http://gpu-1:8000")  # fmt: skip
    assert ok.detector_model == "deepfake-xception" and ok.detector_v2_binary


@pytest.mark.parametrize(
    ("binary", "limits", "per_request"),
    [
        (True, {}, 64),  # a server that states no limit: the client's own cap
        (True, {"max_faces_per_request": 10}, 10),
        (True, {"max_request_bytes": 4096 + 3 * 64 * 64 * 7}, 7),  # binary: 3 bytes per pixel
        (False, {"max_request_bytes": 4096 + 4 * 3 * 64 * 64 * 7}, 7),  # JSON: "255," worst case
        (True, {"max_faces_per_request": 5, "max_request_bytes": 10**9}, 5),
    ],
)
def test_crops_are_split_to_fit_the_servers_advertised_limits(
    server: V2StandIn, tiny_classifier: Classifier, binary: bool,
    limits: dict[str, int], per_request: int,
) -> None:  # fmt: skip
    meta = server.metadata()
    meta["parameters"].update(limits)
    server.metadata_override = meta
    remote = _remote(server, binary=binary)
    try:
        assert remote.max_faces == per_request
        crops = _crops(70, seed=4)
        np.testing.assert_allclose(
            remote.predict(crops), tiny_classifier.predict(crops), atol=1e-4, rtol=0
        )
        sizes = [s.shape[0] for s in server.infers]
        assert sum(sizes) == 70 and max(sizes) == per_request
        if "max_request_bytes" in limits:
            assert max(s.body_bytes for s in server.infers) <= limits["max_request_bytes"]
    finally:
        remote.close()
