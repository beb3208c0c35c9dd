"""What the bot needs from a detector: the seam between chat code and the model.

``detector.service.DetectorService`` satisfies it; tests use small fakes. Only result and error
types cross this boundary, so chat code never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from detector.results import Analysis
from detector.video_results import VideoAnalysis


class Detector(Protocol):
    """An async image analyser. ``analyze`` raises ``detector.errors.DetectorError`` subclasses
    (bad image, no face, busy, closed) and never returns a made-up score."""

    @property
    def model_name(self) -> str: ...

    async def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis: ...

    async def analyze_media(
        self,
        data: bytes,
        *,
        annotate: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Analysis | VideoAnalysis:
        """An image, or a video/animation judged per face track (told apart by content);
        ``on_progress(frames checked, frames sampled)`` as a video's frames are scored."""
        ...

    async def close(self) -> None:
        """Stop intake, finish in-flight analyses and release the model's threads."""
        ...
