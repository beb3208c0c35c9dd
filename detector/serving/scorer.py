"""The model deployment: a :class:`~detector.model.Classifier` in each Ray Serve replica, scoring
face crops in batches across requests.

``@serve.batch`` counts faces (``batch_size_fn``), not requests: the crops of the requests that
arrive within ``batch_wait_s`` are concatenated into one forward pass of at most
``max_batch_size`` faces and the scores are split back in request order, so every caller gets
exactly its own faces' scores. A request with more faces than a batch holds is cut into
batch-sized parts first. The forward pass runs on one dedicated thread, so the replica's event
loop stays free for health checks and for queueing the next batch. A replica placed with a GPU
(``num_gpus``) sees it as ``cuda`` and runs the network there.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import serve

from detector.serving.options import ServeOptions

_log = logging.getLogger(__name__)


def _faces(batch: list[npt.NDArray[np.uint8]]) -> int:
    return sum(len(crops) for crops in batch)


@serve.deployment(name="FaceScorer")
class FaceScorer:
    """Input of :meth:`score`: uint8 crops ``[N, S, S, 3]`` (``Classifier.predict``'s layout);
    output: float64 ``[N]`` calibrated P(fake), exactly what the local classifier returns."""

    def __init__(self, options: ServeOptions) -> None:
        import torch

        from detector.factory import build_classifier

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self._classifier = build_classifier(
            options.weights,
            family=options.family,
            sha256=options.sha256,
            precision=options.precision,
            threads=options.torch_threads,
            device=device,
        )
        self._max_batch = options.max_batch_size
        self.score_batch.set_max_batch_size(options.max_batch_size)  # type: ignore[attr-defined]
        self.score_batch.set_batch_wait_timeout_s(options.batch_wait_s)  # type: ignore[attr-defined]
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="face-scorer")
        self._batches: Counter[int] = Counter()
        config = self._classifier.config
        _log.info("scoring with %s on %s (%s, %d threads), batches of up to %d faces",
                  config.name, device, self._classifier.options.precision,
                  options.torch_threads, options.max_batch_size)

    def describe(self) -> dict[str, Any]:
        """What the V2 metadata says about the served weights."""
        sha = self._classifier.sha256
        return {
            "version": sha[:16] if sha else "unversioned",
            "input_size": self._classifier.input_size,
            "config_json": self._classifier.config.to_json(),
        }

    def stats(self) -> dict[str, Any]:
        """This replica's batches so far: faces scored, forward passes, passes per size."""
        return {
            "inference_count": sum(size * n for size, n in self._batches.items()),
            "execution_count": sum(self._batches.values()),
            "batch_sizes": dict(sorted(self._batches.items())),
        }

    async def score(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float64)
        parts = [crops[i : i + self._max_batch] for i in range(0, len(crops), self._max_batch)]
        scores = await asyncio.gather(*(self.score_batch(part) for part in parts))
        return np.concatenate(scores)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01, batch_size_fn=_faces)
    async def score_batch(
        self, batch: list[npt.NDArray[np.uint8]]
    ) -> list[npt.NDArray[np.float64]]:
        crops = np.concatenate(batch)
        loop = asyncio.get_running_loop()
        p = await loop.run_in_executor(self._executor, self._classifier.predict, crops)
        self._batches[len(crops)] += 1
        ends = np.cumsum([len(part) for part in batch])[:-1]
        return list(np.split(p, ends))
