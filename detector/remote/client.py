"""A synchronous Open Inference Protocol V2 REST client for the one model of
``docs/remote-detector.md``: start-up readiness with a deadline, metadata, and infer with the
contract's error semantics (503 busy; refused, reset and other 5xx retried with backoff, then
unavailable; timeouts unavailable at once; 400 a bug).

It runs on the detector service's model thread, so it blocks; one pooled connection per thread.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# httpx rather than requests: separate connect/read timeouts in one typed object, and it is
# already installed and typed (python-telegram-bot's client), where requests needs stubs.
import httpx
import numpy as np
import numpy.typing as npt

from detector.errors import DetectorBusy, DetectorError, DetectorUnavailable, RemoteModelRefused
from detector.remote.wire import BINARY_HEADER, infer_request, read_scores

_log = logging.getLogger(__name__)

# Worth another try: nothing (or nothing complete) reached a server that is restarting.
_RETRIED = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class RemoteOptions:
    """How the client talks to the server (``DETECTOR_*`` settings)."""

    timeout_s: float = 30.0  # read (an infer's answer)
    connect_timeout_s: float = 5.0
    retries: int = 2  # further tries after refused/reset/5xx, not after a timeout
    backoff_s: float = 0.2  # before the first retry; doubles each time
    binary: bool = True  # the binary tensor extension; False: JSON numbers
    start_timeout_s: float = 60.0  # how long start-up waits for the server and model to be ready

    def __post_init__(self) -> None:
        if min(self.timeout_s, self.connect_timeout_s, self.start_timeout_s) <= 0:
            raise ValueError("remote detector timeouts must be positive")
        if self.retries < 0 or self.backoff_s < 0:
            raise ValueError("remote detector retries and backoff must be >= 0")


class V2Client:
    """One server (``base_url``, e.g. ``http://gpu-1:8000``) and one model name on it."""

    def __init__(self, base_url: str, model: str, options: RemoteOptions | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.options = options or RemoteOptions()
        timeout = httpx.Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._model_path = f"/v2/models/{quote(model, safe='')}"
        self._reachable: bool | None = None  # for logging changes only

    def close(self) -> None:
        self._http.close()

    # --- the routes ---------------------------------------------------------------------------

    def wait_ready(self) -> None:
        """Block until ``/v2/health/ready`` and the model's ready route answer 200, for at most
        ``start_timeout_s``. An unknown model is refused at once (``RemoteModelRefused``); a
        server that never gets ready raises ``DetectorUnavailable``."""
        deadline = time.monotonic() + self.options.start_timeout_s
        last = "no answer yet"
        delay = 0.1
        while True:
            try:
                server = self._http.get("/v2/health/ready")
                if server.status_code == 200:
                    model = self._http.get(f"{self._model_path}/ready")
                    if model.status_code == 200:
                        _log.info("detector server %s ready with model %s",
                                  self.base_url, self.model)  # fmt: skip
                        return
                    if model.status_code == 404:
                        raise RemoteModelRefused(
                            f"the detector server {self.base_url} has no model {self.model!r}: "
                            f"{_error_text(model)}"
                        )
                    last = f"model ready: HTTP {model.status_code}"
                else:
                    last = f"server ready: HTTP {server.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                raise DetectorUnavailable(
                    f"the detector server {self.base_url} (model {self.model!r}) was not ready "
                    f"within {self.options.start_timeout_s:g} s; last: {last}"
                )
            _log.info("waiting for the detector server %s: %s", self.base_url, last)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def metadata(self) -> Any:
        """``GET /v2/models/{name}`` as parsed JSON."""
        response = self._send("GET", self._model_path)
        if response.status_code == 404:
            raise RemoteModelRefused(
                f"the detector server {self.base_url} has no model {self.model!r}: "
                f"{_error_text(response)}"
            )
        if response.status_code != 200:
            raise DetectorUnavailable(
                f"model metadata from {self.base_url}: HTTP {response.status_code} "
                f"{_error_text(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise RemoteModelRefused(
                f"model metadata from {self.base_url} is not JSON"
            ) from None

    def infer(self, faces: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """P(fake) for ``faces`` ``[N, 3, S, S]`` uint8. Raises ``DetectorBusy`` (503),
        ``DetectorUnavailable`` (unreachable, failing, too slow) or ``DetectorError``."""
        request_id = uuid.uuid4().hex
        body, headers = infer_request(faces, request_id, binary=self.options.binary)
        response = self._send("POST", f"{self._model_path}/infer", content=body, headers=headers)
        status = response.status_code
        if status == 200:
            return read_scores(response.content, len(faces), response.headers.get(BINARY_HEADER))
        detail = f"infer {request_id} at {self.base_url}: HTTP {status} {_error_text(response)}"
        if status == 503:
            retry = response.headers.get("Retry-After")
            raise DetectorBusy(detail + (f" (Retry-After {retry})" if retry else ""))
        if status == 404:
            _log.error("the detector server lost its model: %s", detail)
            raise DetectorUnavailable(detail)
        if status >= 500:
            raise DetectorUnavailable(detail)  # retries already spent in _send
        _log.error("the detector server refused our request (a bug on our side): %s", detail)
        raise DetectorError(detail)

    # --- transport ----------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request with the retry policy: refused/reset connections and 5xx answers other
        than 503 are tried again up to ``retries`` times with doubling backoff; a timeout is not.
        Returns the last answer; raises ``DetectorUnavailable`` when none came."""
        attempts = self.options.retries + 1
        for attempt in range(attempts):
            last_try = attempt == attempts - 1
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except httpx.TimeoutException as exc:
                self._down(f"{method} {path}: {type(exc).__name__} after "
                           f"{self.options.timeout_s:g} s")  # fmt: skip
                raise DetectorUnavailable(
                    f"the detector server {self.base_url} timed out ({type(exc).__name__}) on "
                    f"{method} {path}"
                ) from exc
            except _RETRIED as exc:
                if last_try:
                    self._down(f"{method} {path}: {type(exc).__name__}: {exc}")
                    raise DetectorUnavailable(
                        f"the detector server {self.base_url} is unreachable after {attempts} "
                        f"tries: {type(exc).__name__}: {exc}"
                    ) from exc
                _log.info("detector server %s: %s; retrying", self.base_url, type(exc).__name__)
            except httpx.HTTPError as exc:
                self._down(f"{method} {path}: {type(exc).__name__}: {exc}")
                raise DetectorUnavailable(
                    f"the detector server {self.base_url}: {type(exc).__name__}: {exc}"
                ) from exc
            else:
                failing = response.status_code >= 500 and response.status_code != 503
                if not failing or last_try:
                    if failing:
                        self._down(f"{method} {path}: HTTP {response.status_code}")
                    else:
                        self._up()
                    return response
                _log.info("detector server %s: HTTP %d; retrying",
                          self.base_url, response.status_code)  # fmt: skip
            time.sleep(min(self.options.backoff_s * 2**attempt, _MAX_BACKOFF_S))
        raise AssertionError("unreachable")  # pragma: no cover

    def _down(self, why: str) -> None:
        if self._reachable is not False:
            _log.warning("the detector server %s is failing: %s", self.base_url, why)
        self._reachable = False

    def _up(self) -> None:
        if self._reachable is False:
            _log.info("the detector server %s answers again", self.base_url)
        self._reachable = True

    @property
    def reachable(self) -> bool | None:
        """Whether the last request got an answer (None before the first)."""
        return self._reachable


def _error_text(response: httpx.Response) -> str:
    """The ``{"error": ...}`` message of an error answer, or its first bytes."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:500]
    return response.text[:200]
