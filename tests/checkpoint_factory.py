"""Builds each public checkpoint family's file with random weights, in its real layout and format.

Everything follows ``../shared/docs/checkpoints.md``: FF++ whole-module pickles (legacy non-zip,
storages tagged ``cuda:0``, optionally with torch-1.x ``_backend`` records), HongguLiu's legacy
``OrderedDict``, DeepfakeBench/ISPL/timm/Cadene state dicts, plus crafted malicious pickles. The
FF++ classes come from ``tests/fixtures/ffpp_src`` and are importable only inside
:func:`ffpp_code`, so the loader under test can never pick them up.
"""

from __future__ import annotations

import copyreg
import importlib
import math
import pickle
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.backends.thnn
from torch import nn
from torch._sources import get_source_lines_and_file
from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

from detector.model import build_xception

FFPP_SRC = Path(__file__).resolve().parent / "fixtures" / "ffpp_src"
FOREIGN_PACKAGES = ("network", "pretrainedmodels")
StateDict = dict[str, torch.Tensor]


# --- the FF++ stand-in code ---------------------------------------------------------------------


def forget_ffpp_code() -> None:
    """Drop the stand-in packages from ``sys.modules`` (and so from pickle's reach)."""
    for name in list(sys.modules):
        if name.split(".")[0] in FOREIGN_PACKAGES:
            del sys.modules[name]
    importlib.invalidate_caches()


def foreign_modules_loaded() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] in FOREIGN_PACKAGES)


@contextmanager
def ffpp_importable() -> Iterator[None]:
    """Put the stand-ins on ``sys.path`` (without importing them)."""
    sys.path.insert(0, str(FFPP_SRC))
    try:
        yield
    finally:
        sys.path.remove(str(FFPP_SRC))
        forget_ffpp_code()


@contextmanager
def ffpp_code() -> Iterator[ModuleType]:
    """``network.models`` of the FF++ stand-in; pickling of its modules works only inside."""
    with ffpp_importable():
        yield importlib.import_module("network.models")


# --- random weights -----------------------------------------------------------------------------


def random_canonical_state_dict(num_classes: int = 2, seed: int = 0) -> StateDict:
    """A canonical (timm ``legacy_xception``) state dict with random but well-conditioned weights.

    Convolutions are He-initialised; BatchNorm running statistics are then measured on a random
    batch so activations stay O(1) through all blocks and the logits are informative.
    """
    gen = torch.Generator().manual_seed(seed)
    module = build_xception(num_classes)
    sd: StateDict = {}
    for key, ref in module.state_dict().items():
        shape = tuple(ref.shape)
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(0)
        elif key == "fc.weight":
            sd[key] = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            sd[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)
        elif key.endswith(".weight"):
            sd[key] = 1 + 0.1 * torch.randn(shape, generator=gen)
        else:
            sd[key] = 0.1 * torch.randn(shape, generator=gen)
    module.load_state_dict(sd)
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch sets the statistics
    module.train()
    with torch.no_grad():
        module(torch.randn(8, 3, 64, 64, generator=gen))
    out = {k: v.detach().clone() for k, v in module.state_dict().items()}
    for key in out:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.randint(1, 100_000, (), generator=gen)
    return out


def reference_module(sd: Mapping[str, torch.Tensor]) -> nn.Module:
    """timm ``legacy_xception`` built and loaded directly, independent of the loader."""
    module = build_xception(int(sd["fc.weight"].shape[0]))
    module.load_state_dict(dict(sd), strict=True)
    return module.eval()


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = module(x)
    return out


# --- family key layouts -------------------------------------------------------------------------


def with_head(sd: Mapping[str, torch.Tensor], head: str, prefix: str = "") -> StateDict:
    """``prefix`` + canonical keys with ``fc.*`` spelled as ``head`` (``last_linear[.1]``)."""
    return {
        prefix + (head + key[2:] if key.startswith("fc.") else key): value
        for key, value in sd.items()
    }


def transfer_model(
    network_models: ModuleType, sd: Mapping[str, torch.Tensor], dropout: float
) -> nn.Module:
    """FF++ ``TransferModel`` (plain head when ``dropout == 0``) holding the canonical weights."""
    model: nn.Module = network_models.TransferModel("xception", 2, dropout=dropout)
    head = "last_linear.1" if dropout else "last_linear"
    model.load_state_dict(with_head(sd, head, "model."), strict=True)
    return model.eval()


class _Torch1Backend:
    """What a torch 1.x module's ``_backend`` attribute pickles as."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch.nn.backends.thnn._get_thnn_function_backend, ())


def add_torch1_backend(module: nn.Module) -> nn.Module:
    backend = _Torch1Backend()
    for sub in module.modules():
        object.__setattr__(sub, "_backend", backend)
    return module


def deepfakebench_state_dict(sd: Mapping[str, torch.Tensor], *, ddp: bool = False) -> StateDict:
    """``XceptionDetector.state_dict()``: ``backbone.`` + body, ``last_linear``, and the 7
    ``adjust_channel`` tensors (``module.`` on top when saved from DDP)."""
    gen = torch.Generator().manual_seed(99)
    out = with_head(sd, "last_linear", "backbone.")
    out |= {
        "backbone.adjust_channel.0.weight": torch.randn(512, 2048, 1, 1, generator=gen),
        "backbone.adjust_channel.0.bias": torch.randn(512, generator=gen),
        "backbone.adjust_channel.1.weight": torch.ones(512),
        "backbone.adjust_channel.1.bias": torch.zeros(512),
        "backbone.adjust_channel.1.running_mean": torch.zeros(512),
        "backbone.adjust_channel.1.running_var": torch.ones(512),
        "backbone.adjust_channel.1.num_batches_tracked": torch.tensor(0),
    }
    return {("module." + k if ddp else k): v for k, v in out.items()}


def ispl_state_dict(sd: Mapping[str, torch.Tensor]) -> StateDict:
    return with_head(sd, "last_linear", "xception.")


def cadene_2d_state_dict(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Cadene ``xception-b5690688.pth`` style: 2-D pointwise weights, no ``num_batches_tracked``."""
    return {
        key: (value[:, :, 0, 0] if key.endswith(".pointwise.weight") else value)
        for key, value in sd.items()
        if not key.endswith("num_batches_tracked")
    }


# --- the legacy (non-zip) torch writer ----------------------------------------------------------


def write_legacy(
    obj: object,
    path: Path,
    *,
    location: str = "cuda:0",
    numel_in_id: Callable[[int], int] = lambda n: n,
    numel_in_data: Callable[[int], int] = lambda n: n,
) -> Path:
    """``torch.save(obj, path, _use_new_zipfile_serialization=False)`` as torch <= 1.5 wrote it,
    but with the storage location of our choice (``cuda:0`` for files saved from a GPU).

    Mirrors ``torch.serialization._legacy_save``: magic, protocol version and sys_info pickles,
    the main pickle (protocol 2) with ``('module', cls, source_file, source)`` and
    ``('storage', StorageType, key, location, numel, None)`` persistent ids, the sorted key list,
    then per storage an int64 element count and the raw bytes. As ``_cuda_tag`` did, every
    location string is a fresh object (so pickle does not memoise it), and keys have 14 digits
    like the ``str(storage._cdata)`` pointers of the time. ``numel_in_id``/``numel_in_data``
    let tests forge the declared element counts (the bytes written follow the data count, up to
    what the storage holds).
    """
    containers: set[type] = set()
    storages: dict[str, torch.storage.TypedStorage] = {}
    keys: dict[int, int] = {}

    def persistent_id(o: object) -> tuple[object, ...] | None:
        if isinstance(o, type) and issubclass(o, nn.Module):
            if o in containers:
                return None
            containers.add(o)
            lines, _, source_file = get_source_lines_and_file(o)
            return ("module", o, source_file, "".join(lines))
        if isinstance(o, torch.storage.TypedStorage):
            number = keys.setdefault(
                o._untyped_storage._cdata, 94_000_000_000_000 + 752 * len(keys)
            )
            key = str(number)
            storages.setdefault(key, o)
            fresh_location = location[:1] + location[1:]
            storage_type = getattr(torch, o._pickle_storage_type())  # type: ignore[no-untyped-call]
            numel: int = o._size()  # type: ignore[no-untyped-call]
            return ("storage", storage_type, key, fresh_location, numel_in_id(numel), None)
        return None

    class LegacyPickler(pickle.Pickler):
        def persistent_id(self, o: object) -> object:
            return persistent_id(o)

    sys_info = {
        "protocol_version": PROTOCOL_VERSION,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    with path.open("wb") as f:
        pickle.dump(MAGIC_NUMBER, f, protocol=2)
        pickle.dump(PROTOCOL_VERSION, f, protocol=2)
        pickle.dump(sys_info, f, protocol=2)
        LegacyPickler(f, protocol=2).dump(obj)
        ordered = sorted(storages)
        pickle.dump(ordered, f, protocol=2)
        for key in ordered:
            storage = storages[key]
            data = torch.empty(0, dtype=storage.dtype).set_(storage._untyped_storage)
            declared = numel_in_data(storage._size())  # type: ignore[no-untyped-call]
            f.write(declared.to_bytes(8, "little", signed=True))
            # A forged count gets as many elements as exist, so the file really is short.
            f.write(data[:declared].view(torch.uint8).numpy().tobytes())
    return path


def hongguliu_legacy_file(network_models: ModuleType, sd: StateDict, path: Path) -> Path:
    """``deepfake_c0_xception.pkl``-like: ``torch.save(model.state_dict())`` of
    ``TransferModel(dropout=0.5)`` in the legacy format from a GPU (``_metadata`` included)."""
    model = transfer_model(network_models, sd, dropout=0.5)
    return write_legacy(model.state_dict(), path, location="cuda:0")


# --- malicious payloads -------------------------------------------------------------------------


class Call:
    """Pickles as ``func(*args)``: the classic code-execution payload."""

    def __init__(self, func: Callable[..., object], *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def planted_object(cls: type, state: dict[str, object]) -> object:
    """An instance of ``cls`` that pickles as ``cls.__new__(cls)`` + ``BUILD(state)``."""
    obj: object = object.__new__(cls)
    reduce = (copyreg.__newobj__, (cls,), state)  # type: ignore[attr-defined]
    object.__setattr__(obj, "__reduce_ex__", lambda protocol: reduce)
    return obj


def tiny_state_dict() -> OrderedDict[str, torch.Tensor]:
    return OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3), b=torch.ones(2))
