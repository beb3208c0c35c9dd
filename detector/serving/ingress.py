"""The HTTP front: a small FastAPI app on Ray Serve's proxy that speaks the V2 routes of
``docs/remote-detector.md`` and calls the scorer deployment's handle (Ray Serve has no V2
ingress of its own).

Bounds and refusals happen here, before anything reaches a replica: the body is read up to
``max_request_bytes`` (then 400), parsed and validated by :mod:`detector.serving.protocol` off
the event loop, an unknown model name is a 404, and a scorer whose queue is full
(``max_queued_requests``) or that does not answer is a 503 with ``Retry-After``. Every error body
is ``{"error": "..."}``. ``GET /v2/models/{name}/stats`` is a subset of the Triton statistics
extension (the replica that answers).
"""

# No ``from __future__ import annotations``: FastAPI reads the route parameters' annotations
# (``request: Request``) at run time, through the class that ``serve.ingress`` rebuilds.
import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException

from detector.remote.wire import BINARY_HEADER
from detector.serving.options import ServeOptions
from detector.serving.protocol import (
    ModelSpec,
    ProtocolError,
    infer_response,
    parse_infer,
    to_crops,
)

_log = logging.getLogger(__name__)
READY_TIMEOUT_S = 5.0

api = FastAPI(title="deepfake-bot V2 inference", docs_url=None, redoc_url=None,
              openapi_url=None)


def _error(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@api.exception_handler(HTTPException)
async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail))


@api.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(400, f"malformed request: {exc.errors()}")


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(400, f"the request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(400, f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@serve.deployment(name="V2Ingress", ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class V2Ingress:
    def __init__(self, scorer: DeploymentHandle[Any], options: ServeOptions) -> None:
        self._scorer = scorer
        self._options = options
        self._spec: ModelSpec | None = None

    async def _model(self, name: str) -> ModelSpec:
        """The served model's spec (fetched once); 404 for another name, 503 while the scorer
        does not answer."""
        if name != self._options.model_name:
            raise ProtocolError(404, f"unknown model {name!r}: this server serves "
                                f"{self._options.model_name!r}")
        if self._spec is None:
            try:
                info = await asyncio.wait_for(
                    self._scorer.describe.remote(), READY_TIMEOUT_S
                )
            except (TimeoutError, BackPressureError):
                raise ProtocolError(503, "the model is not ready") from None
            self._spec = ModelSpec(
                name=name,
                max_faces_per_request=self._options.max_faces_per_request,
                max_request_bytes=self._options.max_request_bytes,
                **info,
            )
        return self._spec

    async def _answer(self, name: str, what: str) -> JSONResponse:
        try:
            spec = await self._model(name)
        except ProtocolError as exc:
            return _error(exc.status, exc.message)
        if what == "ready":
            return JSONResponse({"name": name, "ready": True})
        return JSONResponse(spec.metadata())

    @api.get("/v2/health/live")
    async def live(self) -> JSONResponse:
        return JSONResponse({"live": True})

    @api.get("/v2/health/ready")
    async def ready(self) -> JSONResponse:
        response = await self._answer(self._options.model_name, "ready")
        if response.status_code != 200:
            return response
        return JSONResponse({"ready": True})

    @api.get("/v2/models/{name}/ready")
    async def model_ready(self, name: str) -> JSONResponse:
        return await self._answer(name, "ready")

    @api.get("/v2/models/{name}")
    async def metadata(self, name: str) -> JSONResponse:
        return await self._answer(name, "metadata")

    @api.get("/v2/models/{name}/stats")
    async def stats(self, name: str) -> JSONResponse:
        try:
            spec = await self._model(name)
        except ProtocolError as exc:
            return _error(exc.status, exc.message)
        raw: dict[str, Any] = await self._scorer.stats.remote()
        return JSONResponse({"model_stats": [{
            "name": spec.name,
            "version": spec.version,
            "inference_count": raw["inference_count"],
            "execution_count": raw["execution_count"],
            "batch_stats": [{"batch_size": size, "compute_infer": {"count": n}}
                            for size, n in raw["batch_sizes"].items()],
        }]})

    @api.post("/v2/models/{name}/infer")
    async def infer(self, name: str, request: Request) -> JSONResponse:
        try:
            spec = await self._model(name)
            body = await _body(request, self._options.max_request_bytes)
            parsed = await asyncio.to_thread(
                parse_infer, body, request.headers.get(BINARY_HEADER), spec,
                max_faces=self._options.max_faces_per_request,
            )
        except ProtocolError as exc:
            return _error(exc.status, exc.message)
        try:
            scores = await self._scorer.score.remote(to_crops(parsed.faces))
        except BackPressureError:
            return _error(503, "the detector is busy; try again shortly")
        try:
            return JSONResponse(infer_response(spec, parsed.id, scores))
        except ValueError as exc:
            _log.error("refusing the scores of request %s: %s", parsed.id, exc)
            return _error(500, str(exc))
