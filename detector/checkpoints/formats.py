"""Container formats: recognise a weights file by its first bytes and read it safely.

Three containers are supported (``checkpoints.md`` §4): safetensors, the torch zip format and the
legacy (non-zip) torch format. Every pickle is first read by the restricted reader of
:mod:`detector.checkpoints.pickle_reader` (no code runs, storages are bounds-checked against the
file); plain state dicts are then loaded with ``torch.load(weights_only=True)``, whole pickled
modules are rebuilt into a state dict from their storages without ever importing their classes.
"""

from __future__ import annotations

import io
import logging
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from detector.checkpoints.pickle_reader import (
    MODULE_GLOBALS,
    Inert,
    PickleContents,
    StorageRef,
    display_name,
    element_size,
    materialise,
    module_tensors,
    read_pickle,
    read_small_pickle,
    storage_from_bytes,
)
from detector.errors import CheckpointError, UnsafeCheckpoint, UnsupportedCheckpoint

_log = logging.getLogger(__name__)

Container = Literal["safetensors", "torch-zip", "torch-legacy"]
PayloadKind = Literal["state_dict", "module"]

MAX_CHECKPOINT_BYTES = 2 * 1024**3
MAX_PICKLE_BYTES = 64 * 1024**2
MAX_ZIP_MEMBERS = 100_000

# torch/serialization.py: MAGIC_NUMBER and PROTOCOL_VERSION of the legacy format.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
# pickle protocol 2 + LONG1 of the magic number: what every torch <= 1.5 file starts with.
LEGACY_SIGNATURE = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")
ZIP_SIGNATURE = b"PK\x03\x04"


@dataclass(frozen=True)
class RawCheckpoint:
    """What a file holds, before the mapping rules.

    ``kind == "module"``: ``payload`` is the flat ``dict[str, Tensor]`` extracted from a whole
    pickled module (``root_class`` names its class). ``kind == "state_dict"``: ``payload`` is
    what the file holds (a state dict or a dict wrapping one). ``metadata``: safetensors header
    metadata, if any.
    """

    container: Container
    kind: PayloadKind
    payload: object
    metadata: dict[str, str] | None = None
    root_class: str | None = None


def sniff_container(path: Path) -> Container:
    """The container of ``path`` from its first bytes; raises for anything unsupported."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(ZIP_SIGNATURE):
        return "torch-zip"
    if head.startswith(LEGACY_SIGNATURE):
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 2 <= header_len <= size - 8:
            return "safetensors"
    if head[:1] == b"\x80":
        if _first_pickle_is_torch_magic(head):
            return "torch-legacy"
        raise UnsupportedCheckpoint(
            "this is a plain Python pickle, not a file written by torch.save or safetensors"
        )
    raise UnsupportedCheckpoint(f"not a PyTorch/safetensors checkpoint ({_describe(head)})")


def _first_pickle_is_torch_magic(head: bytes) -> bool:
    try:
        return read_small_pickle(head) == LEGACY_MAGIC_NUMBER
    except CheckpointError:
        return False


def _describe(head: bytes) -> str:
    if not head:
        return "the file is empty"
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the weights: fetch the real file with `git lfs pull`"
    if head[257:262] == b"ustar":
        return "it is a tar archive (the torch <= 0.1 format), which is not supported"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "it is an HDF5 file, e.g. a Keras/TensorFlow model; only PyTorch weights work"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF")):
        return "it is an image"
    return f"unrecognised first bytes {head[:8].hex(' ')}"


def read_checkpoint(path: Path) -> RawCheckpoint:
    """Read ``path`` according to its container. Raises ``CheckpointError`` subclasses."""
    container = sniff_container(path)
    _log.debug("%s: container %s", path.name, container)
    if container == "safetensors":
        return _read_safetensors(path)
    if container == "torch-zip":
        return _read_zip(path)
    return _read_legacy(path)


# --- safetensors --------------------------------------------------------------------------------


def _read_safetensors(path: Path) -> RawCheckpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UnsupportedCheckpoint(f"damaged safetensors file ({exc})") from exc
    return RawCheckpoint("safetensors", "state_dict", tensors, metadata=metadata)


# --- legacy (non-zip) torch format --------------------------------------------------------------


def _read_legacy(path: Path) -> RawCheckpoint:
    size = path.stat().st_size
    with path.open("rb") as f:
        if read_pickle(f, pid_format=None).root != LEGACY_MAGIC_NUMBER:
            raise UnsupportedCheckpoint("bad magic number in a legacy torch file")
        if read_pickle(f, pid_format=None).root != LEGACY_PROTOCOL_VERSION:
            raise UnsupportedCheckpoint("unknown legacy torch protocol version")
        sys_info = read_pickle(f, pid_format=None).root
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise UnsupportedCheckpoint("legacy torch file from a big-endian machine")
        start = f.tell()
        contents = read_pickle(f, pid_format="legacy")
        if f.tell() - start > MAX_PICKLE_BYTES:
            raise UnsupportedCheckpoint("the object pickle is implausibly large")
        keys = read_pickle(f, pid_format=None).root
        layout = _legacy_storage_layout(f, keys, contents.storages, size)
        if contents.is_whole_module:
            storages: dict[str, torch.Tensor] = {}
            for key, (offset, nbytes) in layout.items():
                f.seek(offset)
                storages[key] = storage_from_bytes(f.read(nbytes), contents.storages[key])
            return _module_checkpoint("torch-legacy", contents, storages)
    _require_plain_state_dict(contents)
    return RawCheckpoint("torch-legacy", "state_dict", _torch_load(path))


def _legacy_storage_layout(
    f: io.BufferedReader, keys: object, declared: dict[str, StorageRef], size: int
) -> dict[str, tuple[int, int]]:
    """Offsets and sizes of each storage's bytes, checked against the declarations and the file
    size before anything is allocated."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise UnsupportedCheckpoint("the storage key list is malformed")
    if len(set(keys)) != len(keys) or set(keys) != set(declared):
        raise UnsupportedCheckpoint("the storage key list does not match the tensors in the file")
    layout: dict[str, tuple[int, int]] = {}
    for key in keys:
        header = f.read(8)
        if len(header) != 8:
            raise UnsupportedCheckpoint("the file ends in the middle of the tensor data")
        (numel,) = struct.unpack("<q", header)
        ref = declared[key]
        if numel != ref.numel:
            raise UnsupportedCheckpoint(
                f"storage {display_name(key)} is declared with {ref.numel} elements but its data "
                f"has {numel}"
            )
        nbytes = numel * element_size(ref.dtype)
        offset = f.tell()
        if offset + nbytes > size:
            raise UnsupportedCheckpoint(
                f"storage {display_name(key)} claims {nbytes} bytes, more than the file holds "
                "(truncated or crafted file)"
            )
        layout[key] = (offset, nbytes)
        f.seek(nbytes, io.SEEK_CUR)
    if f.tell() != size:
        _log.debug("%d trailing bytes after the tensor data", size - f.tell())
    return layout


# --- zip torch format ---------------------------------------------------------------------------


def _read_zip(path: Path) -> RawCheckpoint:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsupportedCheckpoint(f"damaged zip archive ({exc})") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise UnsupportedCheckpoint("zip archive with too many members")
        names = [info.filename for info in infos]
        escaping = next((n for n in names if _leaves_archive(n)), None)
        if escaping is not None:
            # torch.save never writes such a name; nothing is extracted either way, but it
            # marks a crafted file (and torch's own reader fails on it untyped).
            raise UnsafeCheckpoint(
                f"refusing to load: the zip archive names a member outside the archive "
                f"({display_name(escaping)})"
            )
        if any(_is_torchscript_member(name) for name in names):
            raise UnsupportedCheckpoint(
                "this is a TorchScript archive (torch.jit.save), which is not supported: "
                "export the model's state dict with torch.save(model.state_dict(), PATH)"
            )
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UnsupportedCheckpoint(
                "a zip archive, but not a torch.save file (no single <name>/data.pkl)"
            )
        prefix = pickles[0][: -len("data.pkl")]
        if sum(info.file_size for info in infos) > MAX_CHECKPOINT_BYTES:
            raise UnsupportedCheckpoint("zip archive that unpacks to more than 2 GiB")
        if prefix + "byteorder" in names and archive.read(prefix + "byteorder") != b"little":
            raise UnsupportedCheckpoint("torch file saved with big-endian byte order")
        if archive.getinfo(pickles[0]).file_size > MAX_PICKLE_BYTES:
            raise UnsupportedCheckpoint("the object pickle is implausibly large")
        try:
            data = archive.read(pickles[0])
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise UnsupportedCheckpoint(f"damaged zip archive ({exc})") from exc
        contents = read_pickle(io.BytesIO(data), pid_format="zip")
        members: dict[str, str] = {}
        for key, ref in contents.storages.items():
            member = f"{prefix}data/{key}"
            try:
                stored = archive.getinfo(member).file_size
            except KeyError:
                raise UnsupportedCheckpoint(
                    f"the data of storage {display_name(key)} is missing"
                ) from None
            expected = ref.numel * element_size(ref.dtype)
            if stored != expected:
                raise UnsupportedCheckpoint(
                    f"storage {display_name(key)} holds {stored} bytes, but its tensors need "
                    f"{expected} (truncated or crafted file)"
                )
            members[key] = member
        if contents.is_whole_module:
            try:
                storages = {
                    key: storage_from_bytes(archive.read(member), contents.storages[key])
                    for key, member in members.items()
                }
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise UnsupportedCheckpoint(f"damaged zip archive ({exc})") from exc
            return _module_checkpoint("torch-zip", contents, storages)
    _require_plain_state_dict(contents)
    return RawCheckpoint("torch-zip", "state_dict", _torch_load(path))


def _leaves_archive(name: str) -> bool:
    """An absolute path, a backslash path, or one climbing out with ``..`` (a ``:`` is fine:
    torch names the archive after the file, and ``ckpt:v2.pth`` is a legal file name)."""
    return name.startswith("/") or "\\" in name or ".." in name.split("/")


def _is_torchscript_member(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and (parts[1] in {"constants.pkl", "code"} or parts[0] == "code")


# --- shared -------------------------------------------------------------------------------------


def _module_checkpoint(
    container: Container, contents: PickleContents, storages: dict[str, torch.Tensor]
) -> RawCheckpoint:
    root = contents.root
    assert isinstance(root, Inert)
    refs = module_tensors(root)
    tensors = {name: materialise(ref, storages) for name, ref in refs.items()}
    _log.debug("whole pickled %s with %d tensors", root.__inert_name__, len(tensors))
    return RawCheckpoint(container, "module", tensors, root_class=root.__inert_name__)


def _require_plain_state_dict(contents: PickleContents) -> None:
    modules = sorted(contents.globals_seen & MODULE_GLOBALS)
    if modules:
        raise UnsupportedCheckpoint(
            f"the file holds pickled modules ({', '.join(modules[:3])}) inside a "
            f"{type(contents.root).__name__}; only a whole pickled module or a state dict "
            "is supported"
        )


def _torch_load(path: Path) -> object:
    """``torch.load`` restricted to weights; the restricted reader has already vetted the file.

    It gets an open file, not the path: torch would otherwise pick a reader by the extension.
    """
    try:
        with path.open("rb") as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpoint(
            f"refusing to load: torch's weights-only loader rejected the file "
            f"({_torch_reason(exc)})"
        ) from exc
    except Exception as exc:  # whatever torch raises on a file it cannot read
        raise UnsupportedCheckpoint(f"torch could not read it ({_torch_reason(exc)})") from exc


def _torch_reason(exc: BaseException) -> str:
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return display_name(line.strip())
