"""Mapping rules: any supported family's state dict → the canonical one (``checkpoints.md`` §3).

:func:`unwrap_state_dict` finds the tensors inside a training snapshot (rule 1);
:func:`canonicalize_state_dict` applies rules 2-7 (wrapper and family prefixes, known extras,
head rename, 2-D pointwise weights, optional ``num_batches_tracked``, exact validation against
timm ``legacy_xception``) and :func:`build_canonical_module` loads the result strictly (rule 8).
Nothing is ever silently ignored: every unknown, missing or misshapen tensor is an error.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from detector.errors import UnsupportedCheckpoint
from detector.model import ALLOWED_CLASS_COUNTS, build_xception

_log = logging.getLogger(__name__)

WRAPPER_KEYS = ("state_dict", "model_state_dict", "net", "model", "ema", "state_dict_ema")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
FAMILY_PREFIXES = ("model.", "backbone.", "xception.")
# DeepfakeBench builds `adjust_channel` always but uses it only outside `mode: original`.
KNOWN_EXTRAS = frozenset(
    {
        "adjust_channel.0.weight",
        "adjust_channel.0.bias",
        "adjust_channel.1.weight",
        "adjust_channel.1.bias",
        "adjust_channel.1.running_mean",
        "adjust_channel.1.running_var",
        "adjust_channel.1.num_batches_tracked",
    }
)
# (key prefix in the file, name of the head style); each is renamed to `fc.`.
HEADS = (("last_linear.1.", "last_linear.1"), ("last_linear.", "last_linear"), ("fc.", "fc"))
_MAX_LISTED = 5
_MAX_UNWRAP_DEPTH = 3


@dataclass(frozen=True)
class CanonicalWeights:
    """A validated state dict in canonical (timm ``legacy_xception``) names, fp32 tensors.

    ``prefix``: the family prefix that was stripped (``"model."``, ``"backbone."``,
    ``"xception."``) or ``None``; ``wrappers``: stripped wrapper prefixes in order; ``head``: the
    head's spelling in the file (``"fc"``, ``"last_linear"``, ``"last_linear.1"``).
    """

    state_dict: dict[str, torch.Tensor]
    num_classes: int
    prefix: str | None = None
    wrappers: tuple[str, ...] = ()
    head: str = "fc"
    dropped: tuple[str, ...] = ()
    pointwise_2d: bool = False
    filled_num_batches_tracked: bool = False


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def unwrap_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """Rule 1: the flat ``name → tensor`` mapping inside what a file holds.

    A mapping whose values are all tensors is the state dict itself; otherwise the first of
    :data:`WRAPPER_KEYS` that holds a mapping is used (scalar siblings such as ``epoch`` and
    other entries such as an optimizer state are ignored).
    """
    for _ in range(_MAX_UNWRAP_DEPTH):
        if not isinstance(obj, Mapping):
            raise UnsupportedCheckpoint(f"the file holds a {type(obj).__name__}, not a state dict")
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            if not all(isinstance(k, str) for k in obj):
                raise UnsupportedCheckpoint("the state dict has non-string keys")
            return dict(obj)
        inner = next(
            (obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping) and obj[k]), None
        )
        if inner is None:
            keys = [str(k)[:40] for k in obj]
            non_tensor = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            if obj and len(non_tensor) < len(obj):
                raise UnsupportedCheckpoint(
                    "the state dict mixes tensors with other values: "
                    f"{_listing([str(k)[:40] for k in non_tensor])}"
                )
            raise UnsupportedCheckpoint(
                f"no state dict found: top-level keys are [{_listing(keys)}], expected tensors "
                f"or one of {', '.join(WRAPPER_KEYS)}"
            )
        obj = inner
    raise UnsupportedCheckpoint("the state dict is nested too deeply")


@functools.lru_cache(maxsize=4)
def canonical_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    """Key → shape of the canonical module's state dict (built on the meta device: no memory)."""
    with torch.device("meta"):
        module = build_xception(num_classes)
    return {key: tuple(t.shape) for key, t in module.state_dict().items()}


def _strip(keys: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in keys.items()}


def canonicalize_state_dict(raw: Mapping[str, torch.Tensor]) -> CanonicalWeights:
    """Rules 2-7 of ``checkpoints.md`` §3. Raises ``UnsupportedCheckpoint`` with the reason."""
    if not raw:
        raise UnsupportedCheckpoint("the state dict is empty")
    sd: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise UnsupportedCheckpoint("the state dict has non-string keys")
        if not isinstance(value, torch.Tensor):
            raise UnsupportedCheckpoint(f"{key} is a {type(value).__name__}, not a tensor")
        sd[key] = value

    # Rule 2: wrapper prefixes (repeated), then at most one family prefix; only when every
    # key carries it.
    wrappers: list[str] = []
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = _strip(sd, prefix)
                wrappers.append(prefix)
                stripped = True
    family_prefix = next((p for p in FAMILY_PREFIXES if all(k.startswith(p) for k in sd)), None)
    if family_prefix is not None:
        sd = _strip(sd, family_prefix)
    else:
        for prefix in FAMILY_PREFIXES:
            outside = [k for k in sd if not k.startswith(prefix)]
            if len(outside) < len(sd) / 2:
                raise UnsupportedCheckpoint(
                    f"most keys start with {prefix!r} but these do not: {_listing(outside)}; "
                    "this is not a plain Xception detector (e.g. a DeepfakeBench detector with "
                    "extra branches)"
                )

    # Rule 3: known extras.
    dropped = tuple(sorted(k for k in sd if k in KNOWN_EXTRAS))
    for key in dropped:
        del sd[key]

    # Rule 4: head rename.
    styles = [
        (prefix, style)
        for prefix, style in HEADS
        if f"{prefix}weight" in sd or f"{prefix}bias" in sd
    ]
    if len(styles) != 1:
        found = ", ".join(style for _, style in styles) or "none"
        raise UnsupportedCheckpoint(
            "expected exactly one classifier head (fc, last_linear or last_linear.1), "
            f"found: {found}"
        )
    head_prefix, head = styles[0]
    for part in ("weight", "bias"):
        if f"{head_prefix}{part}" not in sd:
            raise UnsupportedCheckpoint(f"the classifier head has no {head_prefix}{part}")
        sd[f"fc.{part}"] = sd.pop(f"{head_prefix}{part}")

    # Rule 5: 2-D pointwise weights (Cadene's xception-b5690688.pth).
    pointwise_2d = False
    for key in [k for k in sd if k.endswith(".pointwise.weight")]:
        if sd[key].ndim == 2:
            sd[key] = sd[key][:, :, None, None]
            pointwise_2d = True

    fc = sd["fc.weight"]
    if fc.ndim != 2 or fc.shape[1] != 2048:
        raise UnsupportedCheckpoint(
            f"the classifier head has shape {list(fc.shape)}, expected [C, 2048]"
        )
    num_classes = int(fc.shape[0])
    if num_classes not in ALLOWED_CLASS_COUNTS:
        raise UnsupportedCheckpoint(
            f"the classifier head has {num_classes} outputs; supported are 2 (softmax), "
            "1 (sigmoid) and 1000 (ImageNet)"
        )
    expected = canonical_shapes(num_classes)

    # Rule 6: num_batches_tracked all or none.
    nbt = [k for k in expected if k.endswith(".num_batches_tracked")]
    present = [k for k in nbt if k in sd]
    filled = not present
    if filled:
        for key in nbt:
            sd[key] = torch.tensor(0, dtype=torch.int64)
    elif len(present) != len(nbt):
        absent = [k for k in nbt if k not in sd]
        raise UnsupportedCheckpoint(
            f"num_batches_tracked is present for {len(present)} of {len(nbt)} BatchNorm layers "
            f"(missing: {_listing(absent)}); expected all or none"
        )

    # Rule 7: exact keys, shapes, dtypes, finite values.
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {_listing(unexpected)}")
        where = f" (after stripping {family_prefix!r})" if family_prefix else ""
        raise UnsupportedCheckpoint(f"not the canonical Xception layout{where}: {'; '.join(parts)}")
    bad_shapes = [
        f"{k} is {list(sd[k].shape)}, expected {list(shape)}"
        for k, shape in expected.items()
        if tuple(sd[k].shape) != shape
    ]
    if bad_shapes:
        hint = ""
        conv1 = sd["conv1.weight"]
        if conv1.ndim == 4 and conv1.shape[1] != 3:
            hint = (
                f" (conv1 takes {conv1.shape[1]} input channels: a variant such as "
                "DeepfakeBench F3Net/SPSL, not a plain RGB Xception)"
            )
        raise UnsupportedCheckpoint(f"wrong tensor shapes{hint}: {_listing(bad_shapes)}")

    out: dict[str, torch.Tensor] = {}
    for key in expected:
        tensor = sd[key].detach()
        if key.endswith(".num_batches_tracked"):
            if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
                raise UnsupportedCheckpoint(f"{key} has dtype {tensor.dtype}, expected an integer")
            out[key] = tensor.to(device="cpu", dtype=torch.int64).clone()
            continue
        if not tensor.is_floating_point():
            raise UnsupportedCheckpoint(f"{key} has dtype {tensor.dtype}, expected floating point")
        tensor = tensor.to(device="cpu", dtype=torch.float32).contiguous()
        if not bool(torch.isfinite(tensor).all()):
            raise UnsupportedCheckpoint(f"{key} contains non-finite values (NaN or Inf)")
        out[key] = tensor
    if wrappers or family_prefix or dropped or pointwise_2d or filled:
        _log.debug(
            "mapped state dict: wrappers=%s prefix=%s head=%s dropped=%d pointwise_2d=%s "
            "filled_num_batches_tracked=%s",
            wrappers,
            family_prefix,
            head,
            len(dropped),
            pointwise_2d,
            filled,
        )
    return CanonicalWeights(
        state_dict=out,
        num_classes=num_classes,
        prefix=family_prefix,
        wrappers=tuple(wrappers),
        head=head,
        dropped=dropped,
        pointwise_2d=pointwise_2d,
        filled_num_batches_tracked=filled,
    )


def build_canonical_module(weights: CanonicalWeights) -> nn.Module:
    """Rule 8: timm ``legacy_xception(num_classes=C)`` holding exactly ``weights``, in eval mode.

    The module is created on the meta device (no random init, no memory) and the tensors are
    assigned by a strict ``load_state_dict``, so nothing can be left uninitialised.
    """
    with torch.device("meta"):
        module = build_xception(weights.num_classes)
    module.load_state_dict(weights.state_dict, strict=True, assign=True)
    leftovers = [
        name
        for name, t in [*module.named_parameters(), *module.named_buffers()]
        if t.device.type == "meta"
    ]
    if leftovers:  # pragma: no cover - would be a timm change
        raise UnsupportedCheckpoint(f"canonical module has unloaded tensors: {leftovers[:3]}")
    return module.eval()
