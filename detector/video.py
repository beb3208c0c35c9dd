"""Videos and animations: bytes → sampled frames → faces followed over time → a verdict per track.

Decoding is PyAV (FFmpeg libraries bundled in its wheels; never a shell call): the container is
recognised by its first bytes (:func:`sniff_video`) and opened with that demuxer only, so FFmpeg
never probes its way into a playlist or concat demuxer that would open other files. Animated
WebP, which FFmpeg does not decode, goes through Pillow. :class:`VideoLimits` are checked on the
header (resolution, duration) before any frame is decoded, and again while decoding (a header may
lie); decoding stops past ``decode_timeout_s``. Every decoder failure becomes a typed
:class:`~detector.errors.VideoError`; a truncated stream is refused, never judged on the part
that happens to decode.

Up to ``max_frames`` frames are sampled evenly over the clip (the first frame at or after each
target time), plus the first frame after each scene cut (up to a quarter more; cuts are found
on tiny grey thumbnails of every decoded frame), scaled down to ``work_side``, and the
pipeline's face finder runs on each. Boxes are linked into tracks frame to frame, never across
a cut (:func:`link_tracks`), every crop is scored by the pipeline's classifier, and each track
is summarised in :class:`~detector.video_results.TrackResult`.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    import av

from detector.annotate import BAND_COLOURS
from detector.config import Band
from detector.errors import (
    CorruptVideo,
    NoFaceInVideo,
    UnsupportedVideo,
    VideoTimeout,
    VideoTooLarge,
    VideoTooLong,
)
from detector.faces import Box
from detector.pipeline import Pipeline
from detector.preprocess import face_crop, full_frame
from detector.video_results import TrackFrame, TrackResult, VideoAnalysis, VideoLimits

_log = logging.getLogger(__name__)

# Container → the one FFmpeg demuxer allowed to read it ("webp": Pillow).
_DEMUXERS = {"mp4": "mov", "matroska": "matroska", "avi": "avi", "gif": "gif"}
_MAX_FPS = 240.0  # decoded frames allowed per second of declared duration


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _animated(data: bytes, fmt: str) -> bool:
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            return int(getattr(img, "n_frames", 1)) > 1
    except Exception:  # not readable as that format: leave it to the image decoder's errors
        return False


def sniff_video(data: bytes) -> str | None:
    """The container of a video or of an animation with more than one frame ("mp4",
    "matroska", "avi", "gif", "webp"), recognised by content; None for anything else (still
    images included)."""
    head = data[:16]
    if len(head) >= 12 and head[4:8] in {b"ftyp", b"moov", b"mdat", b"wide", b"free"}:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith((b"GIF87a", b"GIF89a")) and _animated(data, "GIF"):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP" and data[12:16] == b"VP8X":
        flags = data[20] if len(data) > 20 else 0
        if flags & 0x02 and _animated(data, "WEBP"):
            return "webp"
    return None


@dataclass(frozen=True)
class VideoFrame:
    """A sampled frame, scaled to the work size; ``scale`` = original px / work px."""

    t_s: float
    rgb: npt.NDArray[np.uint8]
    scale: float


@dataclass(frozen=True)
class DecodedVideo:
    frames: tuple[VideoFrame, ...]
    width: int
    height: int
    duration_s: float
    container: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    cuts: tuple[float, ...] = ()  # times of the first frames of new shots (scene cuts)

    def shot_starts(self) -> set[int]:
        """Indexes of sampled frames with a cut since the previous sampled frame: no track
        continues into them (a different shot may put another person at the same place)."""
        starts = set()
        for i in range(1, len(self.frames)):
            before, now = self.frames[i - 1].t_s, self.frames[i].t_s
            if any(before < c <= now for c in self.cuts):
                starts.add(i)
        return starts


def _work_size(width: int, height: int, side: int) -> tuple[int, int, float]:
    scale = max(width, height) / side
    if scale <= 1.0:
        return width, height, 1.0
    # Even sizes: some pixel formats need them for conversion.
    w = max(2, round(width / scale) // 2 * 2)
    h = max(2, round(height / scale) // 2 * 2)
    return w, h, width / w


def _check_header(width: int, height: int, duration: float | None, limits: VideoLimits) -> None:
    if width <= 0 or height <= 0:
        raise CorruptVideo("no frame size in the header")
    if width * height > limits.max_pixels:
        raise VideoTooLarge(
            f"{width}x{height} > {limits.max_pixels} px",
            user_message=(
                f"This video's resolution ({width}x{height}) is over the limit of "
                f"{limits.max_pixels / 1e6:.1f} megapixels (1920x1080 is 2.1). Please send a "
                "smaller version."
            ),
        )
    if duration is not None and duration > limits.max_duration_s:
        raise VideoTooLong(duration, limits.max_duration_s)


def _targets(duration: float, n: int) -> list[float]:
    return [i * duration / n for i in range(n)]


class _Sampler:
    """Keeps the first frame at or after each target time. Without a known duration, keeps
    frames at a stride that doubles whenever twice ``n`` are held (bounded memory), then
    thins them to ``n`` evenly."""

    def __init__(self, duration: float | None, n: int, slack: float = 0.0) -> None:
        self.n = n
        self.slack = slack  # a frame this much before a target still counts for it
        self.targets = _targets(duration, n) if duration else None
        self.next = 0
        self.stride = 0.0
        self.kept: list[tuple[float, npt.NDArray[np.uint8]]] = []
        self.extra: list[tuple[float, npt.NDArray[np.uint8]]] = []  # first frames after cuts
        self.max_extra = max(1, n // 4) if n >= 4 else 0

    def wants(self, t: float) -> bool:
        if self.targets is not None:
            return self.next < len(self.targets) and t + self.slack >= self.targets[self.next]
        return not self.kept or t >= self.kept[-1][0] + self.stride

    def keep(self, t: float, rgb: npt.NDArray[np.uint8]) -> None:
        self.kept.append((t, rgb))
        if self.targets is not None:
            while self.next < len(self.targets) and self.targets[self.next] <= t + self.slack:
                self.next += 1
        elif len(self.kept) >= 2 * self.n:
            self.kept = self.kept[::2]
            self.stride = max(self.stride * 2, (self.kept[1][0] - self.kept[0][0]))

    def wants_extra(self) -> bool:
        return len(self.extra) < self.max_extra

    def keep_extra(self, t: float, rgb: npt.NDArray[np.uint8]) -> None:
        """The first frame of a new shot, beside the evenly spread ones."""
        self.extra.append((t, rgb))

    @property
    def done(self) -> bool:
        return self.targets is not None and self.next >= len(self.targets)

    def result(self) -> list[tuple[float, npt.NDArray[np.uint8]]]:
        kept = self.kept
        if self.targets is None and len(kept) > self.n:
            idx = sorted({round((i + 0.5) * len(kept) / self.n - 0.5) for i in range(self.n)})
            kept = [kept[i] for i in idx]
        times = {t for t, _ in kept}
        return sorted(kept + [e for e in self.extra if e[0] not in times], key=lambda e: e[0])


# A scene cut: the mean absolute difference of consecutive frames' 32x18 grey thumbnails, on
# 0-255, above this. A face moving, grain and recompression stay far below it.
CUT_THRESHOLD = 30.0


def _thumbnail(frame: av.VideoFrame) -> npt.NDArray[np.float32]:
    """A 32x18 grey picture of ``frame`` for cut detection. Planar YUV (nearly every video):
    block means over every 8th pixel of the luma plane, read in place (converting each frame
    through swscale would double the decoding time); anything else through swscale."""
    name = frame.format.name
    if name.startswith(("yuv", "yuvj", "nv12", "nv21", "gray")) and frame.planes:
        plane = frame.planes[0]
        w, h = frame.width, frame.height
        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:h, :w]
        sub = luma[::8, ::8]
        rows, cols = sub.shape[0] // 18 * 18, sub.shape[1] // 32 * 32
        if rows and cols:
            blocks = sub[:rows, :cols].reshape(18, rows // 18, 32, cols // 32)
            grey = blocks.mean(axis=(1, 3), dtype=np.float32)
            if not name.startswith(("yuvj", "gray")):  # limited range: 16-235 → 0-255
                grey = (grey - 16.0) * (255.0 / 219.0)
            return np.asarray(grey, dtype=np.float32)
    return np.asarray(frame.to_ndarray(format="gray", width=32, height=18), dtype=np.float32)


def _rotate(rgb: npt.NDArray[np.uint8], rotation: float) -> npt.NDArray[np.uint8]:
    k = round(rotation / 90.0) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def _decode_av(data: bytes, container: str, limits: VideoLimits) -> DecodedVideo:
    import av  # imported here: image checks never load FFmpeg

    t0 = time.perf_counter()
    deadline = time.monotonic() + limits.decode_timeout_s
    try:
        handle = av.open(io.BytesIO(data), mode="r", format=_DEMUXERS[container])
    except av.FFmpegError as exc:
        raise CorruptVideo(f"cannot open: {exc}") from exc
    with handle:
        if not handle.streams.video:
            raise UnsupportedVideo("no video stream")
        stream = handle.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        duration: float | None = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif handle.duration:
            duration = handle.duration / 1_000_000
        _check_header(width, height, duration, limits)
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 0) or 30.0
        n = limits.max_frames
        if duration:
            n = max(1, min(n, math.ceil(duration * rate)))
        sampler = _Sampler(duration, n, slack=0.5 / rate)
        max_decoded = math.ceil((duration or limits.max_duration_s) * _MAX_FPS) + 16
        work_w, work_h, scale = _work_size(width, height, limits.work_side)
        first: float | None = None
        last = 0.0
        decoded = 0
        cuts: list[float] = []
        previous: npt.NDArray[np.float32] | None = None
        try:
            for frame in handle.decode(stream):
                decoded += 1
                if decoded > max_decoded:
                    raise VideoTooLarge(f"more than {max_decoded} frames")
                if time.monotonic() > deadline:
                    raise VideoTimeout(f"decoding past {limits.decode_timeout_s:.0f} s")
                t_abs = frame.time if frame.time is not None else decoded / rate
                first = t_abs if first is None else first
                t = t_abs - first
                last = t
                if t > limits.max_duration_s:
                    raise VideoTooLong(t, limits.max_duration_s)
                thumb = _thumbnail(frame)
                cut = previous is not None and float(np.abs(thumb - previous).mean()) > (
                    CUT_THRESHOLD
                )
                previous = thumb
                if cut:
                    cuts.append(t)
                wanted = sampler.wants(t)
                if not wanted and not (cut and sampler.wants_extra()):
                    continue
                rgb = _rotate(
                    np.asarray(
                        frame.to_ndarray(format="rgb24", width=work_w, height=work_h),
                        dtype=np.uint8,
                    ),
                    float(frame.rotation or 0),
                )
                if wanted:
                    sampler.keep(t, rgb)
                else:
                    sampler.keep_extra(t, rgb)
                if sampler.done:
                    break
        except av.FFmpegError as exc:
            raise CorruptVideo(f"decoding failed after {decoded} frames: {exc}") from exc
    kept = sampler.result()
    if not kept:
        raise CorruptVideo("no frame could be decoded")
    if duration and not sampler.done and last < 0.9 * duration - 1.0 / rate:
        raise CorruptVideo(f"stream ends at {last:.2f} s of a declared {duration:.2f} s")
    frames = tuple(VideoFrame(t, rgb, scale) for t, rgb in kept)
    return DecodedVideo(
        frames, width, height, duration or last, container, {"decode": _ms(t0)}, tuple(cuts)
    )


def _decode_webp(data: bytes, limits: VideoLimits) -> DecodedVideo:
    """Animated WebP through Pillow (FFmpeg reads only still WebP)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + limits.decode_timeout_s
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as img:
            width, height = img.size
            count = int(getattr(img, "n_frames", 1))
            _check_header(width, height, None, limits)
            n = min(limits.max_frames, count)
            picks = {round((i + 0.5) * count / n - 0.5) for i in range(n)}
            work_w, work_h, scale = _work_size(width, height, limits.work_side)
            frames = []
            t = 0.0
            for i in range(count):
                if time.monotonic() > deadline:
                    raise VideoTimeout(f"decoding past {limits.decode_timeout_s:.0f} s")
                img.seek(i)
                if i in picks:
                    rgb = img.convert("RGB")
                    if scale != 1.0:
                        rgb = rgb.resize((work_w, work_h), Image.Resampling.BILINEAR)
                    frames.append(VideoFrame(t, np.asarray(rgb, dtype=np.uint8), scale))
                t += max(int(img.info.get("duration", 100) or 100), 10) / 1000.0
                if t > limits.max_duration_s:
                    raise VideoTooLong(t, limits.max_duration_s)
    except (OSError, ValueError, EOFError, struct.error) as exc:
        raise CorruptVideo(f"animated WebP: {exc}") from exc
    return DecodedVideo(tuple(frames), width, height, t, "webp", {"decode": _ms(t0)})


def decode_video(data: bytes, limits: VideoLimits | None = None) -> DecodedVideo:
    """Sample frames from a video or animation. Raises ``VideoError`` subclasses."""
    limits = limits or VideoLimits()
    if len(data) > limits.max_bytes:
        raise VideoTooLarge(
            f"{len(data)} bytes > {limits.max_bytes}",
            user_message=(
                f"This video is too large to check ({len(data) / 1e6:.1f} MB; the limit is "
                f"{limits.max_bytes / 1e6:.0f} MB)."
            ),
        )
    container = sniff_video(data)
    if container is None:
        raise UnsupportedVideo("not a video container (or a still image)")
    if container == "webp":
        return _decode_webp(data, limits)
    return _decode_av(data, container, limits)


# --- tracks ------------------------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _affinity(a: Box, b: Box) -> float:
    """How well ``b`` continues ``a``: their IoU, or for boxes that moved further between two
    sampled frames (which can be a third of a second apart), a lower score when the centres
    are within one box width and the sizes within a factor of 1.5. 0: not the same face."""
    overlap = iou(a, b)
    if overlap >= 0.3:
        return overlap
    side = max(a.width, a.height, 1)
    dx = (a.x1 + a.x2 - b.x1 - b.x2) / 2
    dy = (a.y1 + a.y2 - b.y1 - b.y2) / 2
    ratio = max(a.width, b.width) / max(min(a.width, b.width), 1)
    if math.hypot(dx, dy) <= side and ratio <= 1.5:
        return 0.29 * (1 - math.hypot(dx, dy) / (side + 1))
    return 0.0


def link_tracks(
    frames: list[list[TrackFrame]], max_gap: int = 2, shot_starts: set[int] | None = None
) -> list[list[TrackFrame]]:
    """Link each frame's sightings to the tracks seen in the last ``max_gap + 1`` frames,
    best match first (greedy); a sighting that matches nothing starts a new track, and so does
    every sighting in a frame of ``shot_starts`` (the first after a scene cut)."""
    tracks: list[list[TrackFrame]] = []
    last_seen: list[int] = []
    first_of_shot = 0
    for i, sightings in enumerate(frames):
        if shot_starts and i in shot_starts:
            first_of_shot = len(tracks)  # tracks of earlier shots end here
        live = [
            k
            for k in range(first_of_shot, len(tracks))
            if i - last_seen[k] <= max_gap + 1
        ]
        pairs = sorted(
            (
                (_affinity(tracks[k][-1].box, s.box), k, j)
                for k in live
                for j, s in enumerate(sightings)
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_sightings: set[int] = set()
        for score, k, j in pairs:
            if score <= 0 or k in used_tracks or j in used_sightings:
                continue
            tracks[k].append(sightings[j])
            last_seen[k] = i
            used_tracks.add(k)
            used_sightings.add(j)
        for j, s in enumerate(sightings):
            if j not in used_sightings:
                tracks.append([s])
                last_seen.append(i)
    return tracks


# --- the pipeline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameFaces:
    """The faces of one sampled frame: boxes in original pixels and the model inputs."""

    index: int
    boxes: tuple[Box, ...]
    inputs: npt.NDArray[np.uint8]  # [K, S, S, 3]
    too_small: int = 0


def _to_original(box: Box, scale: float, width: int, height: int) -> Box:
    if scale == 1.0:
        return box
    return Box(
        max(0, round(box.x1 * scale)),
        max(0, round(box.y1 * scale)),
        min(width, round(box.x2 * scale)),
        min(height, round(box.y2 * scale)),
        box.score,
    )


class VideoPipeline:
    """Decode, find faces per frame, link tracks, summarise: the synchronous stages, which the
    service runs in its pools (scoring goes through its shared batches)."""

    def __init__(self, pipeline: Pipeline, limits: VideoLimits | None = None) -> None:
        self.pipeline = pipeline
        self.limits = limits or VideoLimits()

    @property
    def model_name(self) -> str:
        return self.pipeline.model_name

    def decode(self, data: bytes) -> DecodedVideo:
        return decode_video(data, self.limits)

    def faces(self, video: DecodedVideo, index: int) -> FrameFaces:
        """Find and crop the faces of one sampled frame (thread-safe)."""
        frame = video.frames[index]
        config = self.pipeline.classifier.config
        size = config.input_size
        found = self.pipeline.face_finder.find(frame.rgb)
        min_px = self.pipeline.min_face_px / frame.scale  # the limit is in original pixels
        work = [b for b in found if b.width >= min_px]
        too_small = len(found) - len(work)
        if not work:
            return FrameFaces(index, (), np.zeros((0, size, size, 3), np.uint8), too_small)
        if config.crop_mode == "full":
            work = work[:1]
            inputs = full_frame(frame.rgb, config)[None]
        else:
            inputs = np.stack([face_crop(frame.rgb, b, config)[0] for b in work])
        boxes = tuple(_to_original(b, frame.scale, video.width, video.height) for b in work)
        return FrameFaces(index, boxes, inputs, too_small)

    def score(self, inputs: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        return self.pipeline.score(inputs)

    def finish(
        self,
        video: DecodedVideo,
        found: list[FrameFaces],
        scores: list[npt.NDArray[np.float64]],
        timings_ms: dict[str, float],
        *,
        annotate: bool = False,
    ) -> VideoAnalysis:
        """Link the scored sightings into tracks and summarise them. Raises ``NoFaceInVideo``
        when no sampled frame had a face to judge."""
        config = self.pipeline.classifier.config
        per_frame = [
            [
                TrackFrame(video.frames[f.index].t_s, box, float(p))
                for box, p in zip(f.boxes, s, strict=True)
            ]
            for f, s in zip(found, scores, strict=True)
        ]
        linked = link_tracks(per_frame, shot_starts=video.shot_starts())
        if not linked:
            raise NoFaceInVideo(len(video.frames))
        high = config.thresholds[1]
        tracks = tuple(
            TrackResult(n, tuple(t), config.band(float(np.mean([s.p_fake for s in t]))), high)
            for n, t in enumerate(linked, start=1)
        )
        need = min(self.limits.min_track_frames, len(video.frames))
        eligible = [i for i, t in enumerate(tracks) if t.frames >= need] or list(
            range(len(tracks))
        )
        deciding = max(eligible, key=lambda i: tracks[i].p_fake)
        sheet = None
        if annotate:
            t0 = time.perf_counter()
            sheet = contact_sheet(video, tracks, config.band)
            timings_ms["contact_sheet"] = _ms(t0)
        return VideoAnalysis(
            tracks=tracks,
            deciding=deciding,
            width=video.width,
            height=video.height,
            duration_s=video.duration_s,
            frames_sampled=len(video.frames),
            frames_with_faces=sum(bool(f.boxes) for f in found),
            container=video.container,
            model=config.name,
            timings_ms=timings_ms,
            contact_sheet_jpeg=sheet,
            too_small=sum(f.too_small for f in found),
        )

    def analyze(self, data: bytes, *, annotate: bool = False) -> VideoAnalysis:
        """All stages in this thread, one forward pass per frame (tests, scripts)."""
        t0 = time.perf_counter()
        video = self.decode(data)
        t1 = time.perf_counter()
        found = [self.faces(video, i) for i in range(len(video.frames))]
        t2 = time.perf_counter()
        scores = [self.score(f.inputs) if len(f.inputs) else np.zeros(0) for f in found]
        timings = {**video.timings_ms, "faces": (t2 - t1) * 1000, "model": _ms(t2)}
        timings["total"] = _ms(t0)
        return self.finish(video, found, scores, timings, annotate=annotate)


# --- the contact sheet -------------------------------------------------------------------------

SHEET_THUMB_SIDE = 360


def sheet_times(tracks: tuple[TrackResult, ...], n: int = 4) -> list[float]:
    """The times of the ``n`` sampled frames with the highest P(fake) of any face, in order."""
    worst: dict[float, float] = {}
    for t in tracks:
        for s in t.sightings:
            worst[s.t_s] = max(worst.get(s.t_s, 0.0), s.p_fake)
    return sorted(sorted(worst, key=lambda k: worst[k], reverse=True)[:n])


def contact_sheet(
    video: DecodedVideo,
    tracks: tuple[TrackResult, ...],
    band: Callable[[float], Band],
    n: int = 4,
) -> bytes:
    """A JPEG grid of the ``n`` most suspicious sampled frames (in time order), each with its
    tracked faces labelled with track, time and that frame's P(fake), boxed in the colour of
    that frame's band (as an image's faces are: a 38% label is never drawn green)."""
    by_time = {f.t_s: f for f in video.frames}
    thumbs = []
    for t_s in sheet_times(tracks, n):
        frame = by_time[t_s]
        img = Image.fromarray(frame.rgb)
        k = SHEET_THUMB_SIDE / max(img.size)
        img = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))))
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=14)
        for track in tracks:
            for s in track.sightings:
                if s.t_s != t_s:
                    continue
                f = k / frame.scale  # original px → thumbnail px
                x1, y1, x2, y2 = (round(v * f) for v in s.box.as_list())
                colour = BAND_COLOURS[band(s.p_fake)]
                draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour, width=3)
                pct = f"{s.p_fake * 100:.0f}% fake"
                label = pct if len(tracks) == 1 else f"face {track.number}: {pct}"
                ty = max(0, y1 - 18)
                width = draw.textlength(label, font=font)
                tx = max(2, min(x1, round(img.width - width - 3)))  # inside the frame
                left, top, right, bottom = draw.textbbox((tx, ty), label, font=font)
                draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=colour)
                draw.text((tx, ty), label, fill=(255, 255, 255), font=font)
        stamp = f"{t_s:.1f} s"
        left, top, right, bottom = draw.textbbox((4, img.height - 20), stamp, font=font)
        draw.rectangle((left - 3, top - 3, right + 3, bottom + 3), fill=(0, 0, 0))
        draw.text((4, img.height - 20), stamp, fill=(255, 255, 255), font=font)
        thumbs.append(img)
    cols = 1 if len(thumbs) == 1 else 2
    rows = math.ceil(len(thumbs) / cols)
    cw = max(t.width for t in thumbs)
    ch = max(t.height for t in thumbs)
    gap = 4
    sheet = Image.new("RGB", (cols * cw + (cols + 1) * gap, rows * ch + (rows + 1) * gap), "white")
    for i, thumb in enumerate(thumbs):
        r, c = divmod(i, cols)
        sheet.paste(thumb, (gap + c * (cw + gap), gap + r * (ch + gap)))
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=85)
    return buf.getvalue()

