"""File-name suffixes of the image and video formats the engine reads. Names only ever pick files
out of a folder (``check DIR``) or let a chat refuse an obvious non-image before downloading it; the
decoder itself recognises formats by content (``detector.images``). Light: no imports."""

from __future__ import annotations

IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib",
    ".tif", ".tiff", ".heic", ".heif", ".avif",
})  # fmt: skip

# Videos the engine reads through PyAV (detector.video); names only, as above.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".3gp"})
