"""``deepfake-bot import-keras-xception``: ImageNet Xception weights from a Keras 3 archive.

A ``.keras`` file is a zip of ``config.json`` (the layer graph) and ``model.weights.h5``. Keras 3
stores each layer's variables under a name made from its class and its position among the
layers of that class (``conv2d_3``, ``batch_normalization_17``), not under the layer's own name
(``block4_sepconv2_bn``). So the config is read for the order and names, the h5 for the arrays,
and every array's shape is checked against the canonical network before it is used. Only JSON
and HDF5 datasets are read; nothing in the archive is executed.

Two differences from PyTorch are handled here:

- Keras' batch norm divides by ``sqrt(var + 1e-3)``, PyTorch's by ``sqrt(var + 1e-5)``: the
  difference is added to the running variance (channels with tiny variances would otherwise
  be scaled up by as much as 10x).
- Keras' ``same`` padding of the stride-2 max-pools is asymmetric (bottom/right only) on even
  feature-map sizes; the PyTorch layout pads both sides. The networks agree exactly at input
  sizes whose every stride-2 stage sees an odd size (``exact_input_size``), and closely
  elsewhere; fine-tuning absorbs the rest.

The result is a backbone without a classification head, in its own small safetensors format
(``BACKBONE_FORMAT``): ``train --init`` accepts it and adds a fresh real/fake head; the serving
loader does not, because a backbone is not a detector.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from detector.errors import UnsupportedCheckpoint
from detector.model import build_xception

BACKBONE_FORMAT = "deepfake-bot-xception-backbone/1"
KERAS_BN_EPS = 1e-3
TORCH_BN_EPS = 1e-5
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # a Keras Xception archive is ~90 MB

# Keras block → (our block, rep indices of its separable convs). Block 2 starts without a
# ReLU (its rep is [sep, bn, relu, sep, bn, pool]); the others start with one.
_ENTRY_AND_EXIT = {2: (1, (0, 3)), 3: (2, (1, 4)), 4: (3, (1, 4)), 13: (12, (1, 4))}
_RESIDUAL_BLOCKS = (1, 2, 3, 12)  # our blocks with a 1x1 skip conv, in graph order


@dataclass(frozen=True)
class ConversionReport:
    tensors: int
    keras_layers: int
    source_sha256: str
    keras_version: str


def _canonical_name(keras_name: str, residual_index: int | None) -> str:
    """Our module path for a Keras Xception layer (conv / separable conv / batch norm)."""
    if residual_index is not None:  # the unnamed 1x1 skip conv / its BN, in graph order
        block = _RESIDUAL_BLOCKS[residual_index]
        return f"block{block}.skipbn" if keras_name.startswith("batch") else f"block{block}.skip"
    fixed = {
        "block1_conv1": "conv1",
        "block1_conv1_bn": "bn1",
        "block1_conv2": "conv2",
        "block1_conv2_bn": "bn2",
        "block14_sepconv1": "conv3",
        "block14_sepconv1_bn": "bn3",
        "block14_sepconv2": "conv4",
        "block14_sepconv2_bn": "bn4",
    }
    if keras_name in fixed:
        return fixed[keras_name]
    head, _, tail = keras_name.partition("_sepconv")
    if not head.startswith("block") or not tail:
        raise UnsupportedCheckpoint(f"unexpected layer {keras_name!r} in a Keras Xception")
    kblock = int(head[5:])
    index = int(tail[0]) - 1
    is_bn = tail.endswith("_bn")
    if kblock in _ENTRY_AND_EXIT:
        block, reps = _ENTRY_AND_EXIT[kblock]
        rep = reps[index]
    elif 5 <= kblock <= 12:  # middle flow: [relu, sep, bn] x 3
        block, rep = kblock - 1, 1 + 3 * index
    else:
        raise UnsupportedCheckpoint(f"unexpected layer {keras_name!r} in a Keras Xception")
    return f"block{block}.rep.{rep + 1 if is_bn else rep}"


def _find_xception(
    config: dict[str, Any], path: tuple[str, ...]
) -> tuple[list[Any], tuple[str, ...]]:
    """The layer list of the (possibly nested) Functional model that holds ``block1_conv1``,
    and the h5 group path of that model (``layers/<auto name>/...``)."""
    layers = config.get("config", {}).get("layers")
    if not isinstance(layers, list):
        raise UnsupportedCheckpoint("config.json holds no functional model")
    names = {x.get("config", {}).get("name") for x in layers if isinstance(x, dict)}
    if "block1_conv1" in names:
        return layers, path
    used: Counter[str] = Counter()
    for layer in layers:
        auto = _auto_name(layer, used)
        if layer.get("class_name") in {"Functional", "Model", "Sequential"}:
            try:
                return _find_xception(layer, (*path, "layers", auto))
            except UnsupportedCheckpoint:
                continue
    raise UnsupportedCheckpoint("no Xception (block1_conv1 … block14_sepconv2) in config.json")


def _auto_name(layer: dict[str, Any], used: Counter[str]) -> str:
    """Keras 3's storage name for a layer: snake-case class name, numbered per class."""
    cls = str(layer.get("class_name", ""))
    snake = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls)  # keras.src.utils.naming.to_snake_case
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", snake).lower()
    n = used[snake]
    used[snake] += 1
    return snake if n == 0 else f"{snake}_{n}"


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise UnsupportedCheckpoint(f"not a Keras 3 archive: no {name}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise UnsupportedCheckpoint(f"{name} is {info.file_size:,} bytes: too large")
    return archive.read(info)


def read_keras_xception(path: Path) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """The canonical backbone state dict (every key of our Xception except ``fc``)."""
    try:
        import h5py
    except ImportError as exc:  # an optional extra: only the converter needs it
        raise UnsupportedCheckpoint(
            "reading Keras weights needs h5py: pip install 'deepfake-bot[train]'"
        ) from exc
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnsupportedCheckpoint(f"{path.name}: not a Keras 3 archive (not a zip)") from None
    with archive:
        config = json.loads(_read_member(archive, "config.json"))
        meta = json.loads(_read_member(archive, "metadata.json") or b"{}")
        weights_bytes = _read_member(archive, "model.weights.h5")
    layers, group_path = _find_xception(config, ())
    expected = build_xception(2).state_dict()
    out: dict[str, torch.Tensor] = {}
    used: Counter[str] = Counter()
    residual = {"conv": 0, "bn": 0}
    with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
        for layer in layers:
            auto = _auto_name(layer, used)
            cls, cfg = layer.get("class_name"), layer.get("config", {})
            if cls not in {"Conv2D", "SeparableConv2D", "BatchNormalization"}:
                continue
            name = str(cfg.get("name", ""))
            res_index: int | None = None
            if not name.startswith("block"):
                kind = "bn" if cls == "BatchNormalization" else "conv"
                res_index, residual[kind] = residual[kind], residual[kind] + 1
            target = _canonical_name(name, res_index)
            group = h5["/".join((*group_path, "layers", auto, "vars"))]
            arrays = [np.asarray(group[str(i)]) for i in range(len(group))]
            for key, value in _convert_layer(cls, cfg, target, arrays).items():
                if key not in expected or tuple(expected[key].shape) != tuple(value.shape):
                    want = tuple(expected[key].shape) if key in expected else "no such key"
                    raise UnsupportedCheckpoint(
                        f"{name} ({auto}) → {key}: shape {tuple(value.shape)}, expected {want}"
                    )
                out[key] = value
    wanted = {k for k in expected if not k.startswith("fc.")}
    missing = sorted(wanted - set(out))
    if missing:
        raise UnsupportedCheckpoint(
            f"{path.name}: {len(missing)} backbone tensors missing (first: {missing[0]})"
        )
    report = ConversionReport(len(out), len(layers), digest, str(meta.get("keras_version", "?")))
    return out, report


def _convert_layer(
    cls: str, cfg: dict[str, Any], target: str, arrays: list[npt.NDArray[Any]]
) -> dict[str, torch.Tensor]:
    def t(a: npt.NDArray[Any], *perm: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.astype(np.float32).transpose(perm)))

    if cls == "Conv2D":
        if cfg.get("use_bias"):
            raise UnsupportedCheckpoint(f"{cfg.get('name')}: convolutions with a bias")
        return {f"{target}.weight": t(arrays[0], 3, 2, 0, 1)}
    if cls == "SeparableConv2D":
        return {
            f"{target}.conv1.weight": t(arrays[0], 2, 3, 0, 1),  # (kh, kw, C, 1) → (C, 1, kh, kw)
            f"{target}.pointwise.weight": t(arrays[1], 3, 2, 0, 1),
        }
    eps = float(cfg.get("epsilon", KERAS_BN_EPS))
    gamma, beta, mean, var = (torch.from_numpy(a.astype(np.float32)) for a in arrays)
    return {
        f"{target}.weight": gamma,
        f"{target}.bias": beta,
        f"{target}.running_mean": mean,
        # Same normaliser as Keras: var + eps_keras == (var + eps_keras - eps_torch) + eps_torch.
        f"{target}.running_var": var + (eps - TORCH_BN_EPS),
        f"{target}.num_batches_tracked": torch.zeros((), dtype=torch.long),
    }


def exact_input_size(size: int) -> bool:
    """Whether every stride-2 max-pool sees an odd feature-map size at this input size, where
    Keras' and PyTorch's paddings coincide (conv1: valid, stride 2; conv2: valid)."""
    n = (size - 3) // 2 + 1 - 2
    for _ in range(4):
        if n % 2 == 0:
            return False
        n = (n + 1) // 2
    return True


def save_backbone(state: dict[str, torch.Tensor], out: Path, report: ConversionReport) -> None:
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": BACKBONE_FORMAT,
        "source_sha256": report.source_sha256,
        "keras_version": report.keras_version,
        "description": "ImageNet Xception backbone converted from a Keras 3 archive; no "
        "real/fake head: a starting point for `train --init`, not a detector",
    }
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata=meta)


def is_backbone_file(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            return (fh.metadata() or {}).get("format") == BACKBONE_FORMAT
    except Exception:  # anything that is not a readable safetensors file
        return False


def load_backbone(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A converted backbone: exactly the canonical keys less ``fc`` (strict), and its metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = dict(fh.metadata() or {})
        state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open API
    if meta.get("format") != BACKBONE_FORMAT:
        raise UnsupportedCheckpoint(f"{path.name}: not a converted Xception backbone")
    expected = {
        k: v.shape for k, v in build_xception(2).state_dict().items() if not k.startswith("fc.")
    }
    if set(state) != set(expected) or any(state[k].shape != expected[k] for k in expected):
        raise UnsupportedCheckpoint(f"{path.name}: keys or shapes differ from an Xception backbone")
    return state, meta
