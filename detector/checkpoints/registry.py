"""Known public weight files, the project's ``weights/manifest.json``, and file hashing.

A file whose name matches a known public release must also match that release's size and
sha256 fingerprint (``checkpoints.md`` §2); a file listed in a ``manifest.json`` next to it must
match the sha256 listed there. Either mismatch is a :class:`~detector.errors.ChecksumMismatch`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from detector.config import FAMILY_CONFIGS
from detector.errors import ChecksumMismatch, UnsupportedCheckpoint

_log = logging.getLogger(__name__)

OWN_FAMILY = "deepfake-bot"
IMAGENET = "imagenet"
MANIFEST_NAME = "manifest.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def known_families() -> tuple[str, ...]:
    """Every value ``family=`` accepts."""
    return (*FAMILY_CONFIGS, OWN_FAMILY)


@dataclass(frozen=True)
class KnownFile:
    """A public release recognised by file name. ``hash`` in the pattern: a sha256 prefix
    embedded in the name (torch hub / ISPL convention)."""

    pattern: str
    family: str
    source: str
    size: int | None = None
    sha256_prefix: str | None = None
    sha256_suffix: str | None = None


KNOWN_FILES: tuple[KnownFile, ...] = (
    KnownFile(
        r"deepfake_c0_xception\.pkl",
        "hongguliu",
        "HongguLiu/Deepfake-Detection deepfake_c0_xception.pkl",
        size=83_519_096,
        sha256_prefix="9dffd1ad",
        sha256_suffix="0a7",
    ),
    KnownFile(r"all_(raw|c23|c40)\.p", "ffpp", "FaceForensics++ face-crop Xception"),
    KnownFile(r"full_(raw|c23|c40)\.p", "ffpp-full", "FaceForensics++ full-frame Xception"),
    KnownFile(r"xception_best\.pth", "deepfakebench", "DeepfakeBench xception_best.pth"),
    KnownFile(
        r"Xception_(DFDC|FFPP)_bestval-(?P<hash>[0-9a-f]{6,64})\.pth",
        "ispl",
        "polimi-ispl icpr2020dfdc Xception",
    ),
    KnownFile(r"xception-(?P<hash>43020ad28)\.pth", IMAGENET, "timm/Cadene ImageNet Xception"),
    KnownFile(r"xception-(?P<hash>b5690688)\.pth", IMAGENET, "Cadene ImageNet Xception (2018)"),
)


@dataclass(frozen=True)
class Expectation:
    """What a file must be, and where that requirement comes from."""

    source: str
    family: str | None = None
    size: int | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    sha256_suffix: str | None = None

    def check(self, name: str, size: int, digest: str) -> None:
        if self.size is not None and size != self.size:
            raise ChecksumMismatch(
                f"{name}: expected {self.size:,} bytes ({self.source}) but the file has "
                f"{size:,}; it is damaged or a different file"
            )
        if self.sha256 is not None and digest != self.sha256:
            raise ChecksumMismatch(
                f"{name}: sha256 {digest} does not match {self.sha256} ({self.source})"
            )
        if self.sha256_prefix is not None and not digest.startswith(self.sha256_prefix):
            raise ChecksumMismatch(
                f"{name}: sha256 {digest} does not start with {self.sha256_prefix} "
                f"({self.source}); it is damaged or a different file"
            )
        if self.sha256_suffix is not None and not digest.endswith(self.sha256_suffix):
            raise ChecksumMismatch(
                f"{name}: sha256 {digest} does not end with {self.sha256_suffix} ({self.source})"
            )


def known_file(name: str) -> Expectation | None:
    """The expectation for a known public file name, if ``name`` is one."""
    for known in KNOWN_FILES:
        match = re.fullmatch(known.pattern, name)
        if match is None:
            continue
        prefix = match.groupdict().get("hash") or known.sha256_prefix
        return Expectation(
            source=known.source,
            family=known.family,
            size=known.size,
            sha256_prefix=prefix,
            sha256_suffix=known.sha256_suffix,
        )
    return None


def normalise_sha256(value: str) -> str:
    """A full lowercase hex sha256 from user input (``sha256:`` prefix and case tolerated)."""
    text = value.strip().lower().removeprefix("sha256:")
    if not _HEX64.fullmatch(text):
        raise ChecksumMismatch(f"expected sha256 {value!r:.80} is not a 64-digit hex digest")
    return text


def manifest_entry(path: Path) -> Expectation | None:
    """The entry for ``path`` in ``manifest.json`` next to it, if both exist.

    Format: ``{"files": {"<name>": {"sha256": "...", "family": "..."}}}``. A manifest that
    cannot be read is an error, since it exists to pin what may be loaded.
    """
    manifest = path.parent / MANIFEST_NAME
    if not manifest.is_file():
        return None
    try:
        raw = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedCheckpoint(f"{manifest} cannot be read: {exc}") from exc
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, dict):
        raise UnsupportedCheckpoint(f'{manifest} has no "files" object')
    entry = files.get(path.name)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise UnsupportedCheckpoint(f"{manifest}: the entry for {path.name} has no sha256")
    family = entry.get("family")
    if family is not None and family not in known_families():
        raise UnsupportedCheckpoint(
            f"{manifest}: unknown family {family!r} for {path.name}; "
            f"known: {', '.join(known_families())}"
        )
    try:
        sha = normalise_sha256(entry["sha256"])
    except ChecksumMismatch as exc:
        raise UnsupportedCheckpoint(f"{manifest}: {exc}") from exc
    return Expectation(source=str(manifest), family=family, sha256=sha)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
