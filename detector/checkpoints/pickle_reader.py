"""A restricted reader for torch pickles that never executes code from the file.

It reads the main pickle of a legacy (non-zip) or zip ``torch.save`` file with an unpickler whose
``find_class`` only hands out inert stand-ins (``checkpoints.md`` §4.3): tensors become
:class:`TensorRef` records, storages :class:`StorageRef` records, and the ``nn.Module`` classes of
the supported detector families one placeholder class each. No module named in the file is ever
imported. A whole pickled module is then walked (``_modules``/``_parameters``/``_buffers``) into a
flat state dict, and its tensors are materialised from the storage bytes with bounds checks.
"""

from __future__ import annotations

import _compat_pickle
import io
import logging
import math
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Literal, NamedTuple

import torch

from detector.errors import CheckpointError, UnsafeCheckpoint, UnsupportedCheckpoint

_log = logging.getLogger(__name__)

PidFormat = Literal["legacy", "zip"]

MAX_STORAGES = 100_000
MAX_TENSOR_DIMS = 8
MAX_MODULE_DEPTH = 32
MAX_MODULES = 10_000
_MAX_NAME = 120


def display_name(text: str) -> str:
    """A name from the file, safe to put in a message (printable, bounded)."""
    if text.isprintable() and len(text) <= _MAX_NAME:
        return text
    return repr(text[:_MAX_NAME]) + ("..." if len(text) > _MAX_NAME else "")


# --- inert records ------------------------------------------------------------------------------


class StorageType(NamedTuple):
    """What ``torch.FloatStorage`` & co. unpickle to: a dtype marker, nothing callable."""

    name: str
    dtype: torch.dtype


class StorageRef(NamedTuple):
    """A storage named by a persistent id; its bytes are read later, with bounds checks."""

    key: str
    dtype: torch.dtype
    numel: int


class TensorRef(NamedTuple):
    """What ``torch._utils._rebuild_tensor_v2`` unpickles to: a view description."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_STORAGE_TYPES = {
    f"torch.{name}": StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()
}


class Inert:
    """Stand-in for every allow-listed ``nn.Module`` class: a bag of attributes.

    Creating one through ``NEWOBJ`` (how modules are pickled) is allowed; *calling* the class
    (``REDUCE``/``OBJ``) is refused. ``BUILD`` may only fill ``__dict__`` with ordinary names,
    so no later ``BUILD`` can find a ``__setstate__`` smuggled into the instance.
    """

    __inert_name__ = "?"

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise UnsafeCheckpoint(
            f"refusing to load: the file calls {self.__inert_name__}(...), which is only allowed "
            "as a data container"
        )

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not isinstance(state, dict):
            raise UnsafeCheckpoint(
                f"refusing to load: unexpected state for {self.__inert_name__}: "
                f"{type(state).__name__}"
            )
        for key in state:
            if not isinstance(key, str) or key.startswith("__"):
                raise UnsafeCheckpoint(
                    f"refusing to load: {self.__inert_name__} has a forbidden attribute {key!r:.60}"
                )
        self.__dict__.update(state)


# Module classes a supported whole-module pickle may name (checkpoints.md §2.1).
ALLOWED_MODULE_CLASSES: tuple[str, ...] = (
    "network.models.TransferModel",
    "network.xception.Xception",
    "network.xception.Block",
    "network.xception.SeparableConv2d",
    "pretrainedmodels.models.xception.Xception",
    "pretrainedmodels.models.xception.Block",
    "pretrainedmodels.models.xception.SeparableConv2d",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.dropout.Dropout",
)
MODULE_GLOBALS = frozenset(ALLOWED_MODULE_CLASSES)
_PLACEHOLDERS: dict[str, type[Inert]] = {
    name: type(name.rsplit(".", 1)[1], (Inert,), {"__inert_name__": name})
    for name in ALLOWED_MODULE_CLASSES
}


def _rebuild_tensor_v2(
    storage: object,
    offset: object,
    size: object,
    stride: object,
    requires_grad: object = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise UnsafeCheckpoint("refusing to load: a tensor does not point at a storage record")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise UnsupportedCheckpoint("a tensor has an invalid storage offset")
    return TensorRef(storage, offset, _int_tuple(size, "size"), _int_tuple(stride, "stride"))


def _rebuild_parameter(
    data: object, requires_grad: object = True, backward_hooks: object = None
) -> TensorRef:
    if not isinstance(data, TensorRef):
        raise UnsafeCheckpoint("refusing to load: a Parameter does not wrap a tensor")
    return data


def _legacy_parameter(data: object = None, requires_grad: object = True) -> TensorRef:
    return _rebuild_parameter(data, requires_grad)


def _no_backend() -> None:
    """``torch.nn.backends.thnn._get_thnn_function_backend``: torch 1.x modules' ``_backend``."""
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or len(value) > MAX_TENSOR_DIMS:
        raise UnsupportedCheckpoint(f"a tensor has an invalid {what}")
    if not all(_is_int(v) and v >= 0 for v in value):
        raise UnsupportedCheckpoint(f"a tensor has an invalid {what}: {tuple(value)!r:.80}")
    return tuple(value)


_FUNCTIONS: dict[str, Callable[..., object]] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch.nn.parameter.Parameter": _legacy_parameter,
    "torch.nn.backends.thnn._get_thnn_function_backend": _no_backend,
    "collections.OrderedDict": OrderedDict,
    "builtins.set": set,
}

# --- the unpickler ------------------------------------------------------------------------------


@dataclass
class PickleContents:
    """The result of one restricted read of a main pickle."""

    root: object
    storages: dict[str, StorageRef] = field(default_factory=dict)
    globals_seen: set[str] = field(default_factory=set)

    @property
    def is_whole_module(self) -> bool:
        return isinstance(self.root, Inert)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals only to the inert stand-ins above."""

    def __init__(self, file: IO[bytes], *, pid_format: PidFormat | None) -> None:
        super().__init__(file)
        self._pid_format = pid_format
        self.storages: dict[str, StorageRef] = {}
        self.globals_seen: set[str] = set()

    def find_class(self, module: str, name: str, /) -> Any:
        # Protocol-2 pickles spell some names the Python 2 way (`__builtin__.set`).
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if self._pid_format is not None:
            found: object = (
                _FUNCTIONS.get(full) or _STORAGE_TYPES.get(full) or _PLACEHOLDERS.get(full)
            )
            if found is not None:
                self.globals_seen.add(full)
                return found
        raise UnsafeCheckpoint(
            f"refusing to load: the file references {display_name(full)}, which is not allowed"
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._pid_format is None or not isinstance(pid, tuple) or not pid:
            raise UnsafeCheckpoint("refusing to load: unexpected persistent id in the pickle")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module" and self._pid_format == "legacy" and len(pid) == 4:
            cls = pid[1]
            if isinstance(cls, type) and issubclass(cls, Inert):
                return cls  # the saved source text (pid[2:]) is ignored on purpose
            raise UnsafeCheckpoint("refusing to load: a module record names a non-module class")
        if kind != "storage":
            raise UnsafeCheckpoint(
                f"refusing to load: persistent id of kind {display_name(str(kind))}"
            )
        if self._pid_format == "legacy":
            if len(pid) != 6 or pid[5] is not None:
                raise UnsupportedCheckpoint("storage views are not supported")
            _, stype, key, location, numel, _view = pid
        else:
            if len(pid) != 5:
                raise UnsafeCheckpoint("refusing to load: malformed storage record")
            _, stype, key, location, numel = pid
        if isinstance(key, bytes):
            key = key.decode("ascii")
        if not isinstance(stype, StorageType):
            raise UnsafeCheckpoint("refusing to load: storage record without a storage type")
        if not isinstance(key, str) or not key or len(key) > 64 or not key.isprintable():
            raise UnsafeCheckpoint("refusing to load: malformed storage key")
        if not isinstance(location, str | bytes) or not _is_int(numel) or numel < 0:
            raise UnsafeCheckpoint("refusing to load: malformed storage record")
        ref = StorageRef(key, stype.dtype, numel)
        previous = self.storages.setdefault(key, ref)
        if previous != ref:
            raise UnsupportedCheckpoint(f"storage {display_name(key)} is declared twice")
        if len(self.storages) > MAX_STORAGES:
            raise UnsupportedCheckpoint("too many storages")
        return ref


def read_pickle(file: IO[bytes], *, pid_format: PidFormat | None) -> PickleContents:
    """Read one pickle from ``file`` (left just after it). ``pid_format=None``: no globals and
    no persistent ids at all (the small header/key-list pickles)."""
    unpickler = RestrictedUnpickler(file, pid_format=pid_format)
    try:
        root = unpickler.load()
    except CheckpointError:
        raise
    except RecursionError as exc:
        raise UnsupportedCheckpoint("the pickle is nested too deeply") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        struct.error,
        UnicodeDecodeError,
    ) as exc:
        raise UnsupportedCheckpoint(
            f"the pickle is malformed ({type(exc).__name__}: {display_name(str(exc))})"
        ) from exc
    return PickleContents(root, unpickler.storages, unpickler.globals_seen)


def read_small_pickle(data: bytes) -> object:
    return read_pickle(io.BytesIO(data), pid_format=None).root


# --- whole modules → flat state dict ------------------------------------------------------------


def module_tensors(root: Inert) -> dict[str, TensorRef]:
    """``state_dict()`` of a pickled module tree, computed from its attributes alone."""
    out: dict[str, TensorRef] = {}
    on_path: set[int] = set()
    visited = 0

    def mapping(node: Inert, attr: str, path: str) -> Mapping[object, object]:
        value = node.__dict__.get(attr)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise UnsupportedCheckpoint(f"{path or 'the root module'}.{attr} is not a dict")
        return value

    def walk(node: Inert, prefix: str, depth: int) -> None:
        nonlocal visited
        visited += 1
        if depth > MAX_MODULE_DEPTH or visited > MAX_MODULES:
            raise UnsupportedCheckpoint("the pickled module tree is too deep or too large")
        if id(node) in on_path:
            raise UnsupportedCheckpoint(f"the pickled module tree has a cycle at {prefix!r}")
        path = prefix.rstrip(".")
        if "_parameters" not in node.__dict__ or "_modules" not in node.__dict__:
            raise UnsupportedCheckpoint(
                f"{display_name(path or 'the root object')} ({node.__inert_name__}) is not a "
                "pickled torch nn.Module"
            )
        on_path.add(id(node))
        skip = node.__dict__.get("_non_persistent_buffers_set") or set()
        if not isinstance(skip, set):
            raise UnsupportedCheckpoint(f"{path}._non_persistent_buffers_set is not a set")
        for attr in ("_parameters", "_buffers"):
            for name, value in mapping(node, attr, path).items():
                if not isinstance(name, str):
                    raise UnsupportedCheckpoint(f"{path}.{attr} has a non-string key")
                if value is None or (attr == "_buffers" and name in skip):
                    continue
                if not isinstance(value, TensorRef):
                    raise UnsupportedCheckpoint(
                        f"{display_name(prefix + name)} is not a tensor ({type(value).__name__})"
                    )
                out[prefix + name] = value
        for name, child in mapping(node, "_modules", path).items():
            if not isinstance(name, str):
                raise UnsupportedCheckpoint(f"{path}._modules has a non-string key")
            if child is None:
                continue
            if not isinstance(child, Inert):
                raise UnsupportedCheckpoint(
                    f"submodule {display_name(prefix + name)} is a {type(child).__name__}, "
                    "not a module"
                )
            walk(child, f"{prefix}{name}.", depth + 1)
        on_path.discard(id(node))

    walk(root, "", 0)
    return out


def materialise(ref: TensorRef, storages: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A fresh tensor for ``ref`` cut out of its storage, after bounds checks."""
    base = storages[ref.storage.key]
    if len(ref.size) != len(ref.stride):
        raise UnsupportedCheckpoint("a tensor has mismatched size and stride")
    count = math.prod(ref.size)
    if count == 0:
        return torch.empty(ref.size, dtype=base.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    # A view never needs more elements than its storage holds (this also bounds the clone).
    if last >= base.numel() or count > base.numel():
        raise UnsupportedCheckpoint(
            f"a tensor of size {list(ref.size)} reaches past the end of its storage "
            f"({base.numel()} elements)"
        )
    return torch.as_strided(base, ref.size, ref.stride, ref.offset).clone()


def storage_from_bytes(data: bytes | bytearray, ref: StorageRef) -> torch.Tensor:
    """A 1-D tensor over a fresh copy of the storage's little-endian bytes."""
    expected = ref.numel * element_size(ref.dtype)
    if len(data) != expected:
        raise UnsupportedCheckpoint(
            f"storage {display_name(ref.key)} holds {len(data)} bytes, expected {expected}"
        )
    if ref.numel == 0:
        return torch.empty(0, dtype=ref.dtype)
    return torch.frombuffer(bytearray(data), dtype=ref.dtype)


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
