"""What the bot needs from a detector: the seam between chat code and the model.

``detector.service.DetectorService`` satisfies it; tests use small fakes. Only result and error
types cross this boundary, so chat code never imports torch.
"""

from __future__ import annotations

from typing import Protocol

from detector.results import Analysis


class Detector(Protocol):
    """An async image analyser. ``analyze`` raises ``detector.errors.DetectorError`` subclasses
    (bad image, no face, busy, closed) and never returns a made-up score."""

    @property
    def model_name(self) -> str: ...

    async def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis: ...

    async def close(self) -> None:
        """Stop intake, finish in-flight analyses and release the model's threads."""
        ...
