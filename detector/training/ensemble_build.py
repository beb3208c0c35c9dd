"""``deepfake-bot ensemble``: several trained checkpoints into one ensemble file, and
``deepfake-bot ensemble-member``: one member back out of it (to fine-tune or measure alone).

The members must be fed alike (same input size, normalisation, crop and head); only their
calibration may differ, and it is dropped: the ensemble's mean logit needs its own, so the
file is meant for ``deepfake-bot calibrate`` next (until then its verdict bands are the
uncalibrated defaults and the command says so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from detector.checkpoints import load_checkpoint, save_checkpoint
from detector.config import MAX_MEMBERS, ModelConfig
from detector.ensemble import LogitEnsemble

_log = logging.getLogger(__name__)

# What the members must share: everything that decides the network's input and output.
_FED_ALIKE = (
    "input_size", "mean", "std", "interpolation", "crop_mode", "crop_scale", "num_classes",
    "head", "fake_index",
)  # fmt: skip


def build_ensemble(weights: Sequence[Path], out: Path, name: str | None = None) -> str:
    """Write the logit ensemble of ``weights`` to ``out`` (fp16, like shipped weights);
    returns its sha256. Raises ValueError when the members cannot be served as one."""
    if not 2 <= len(weights) <= MAX_MEMBERS:
        raise ValueError(f"an ensemble takes 2 to {MAX_MEMBERS} checkpoints, got {len(weights)}")
    loaded = [load_checkpoint(w) for w in weights]
    shas = [item.sha256 for item in loaded]
    if len(set(shas)) != len(shas):
        raise ValueError("the same weights are given twice (an ensemble of copies is one network)")
    first = loaded[0].config
    for path, item in zip(weights, loaded, strict=True):
        if item.config.members != 1:
            raise ValueError(f"{path.name} is already an ensemble; list its members instead")
        differs = [f for f in _FED_ALIKE if getattr(item.config, f) != getattr(first, f)]
        if differs:
            raise ValueError(
                f"{path.name} is fed differently from {weights[0].name} ({', '.join(differs)}); "
                "ensemble members must share their preprocessing"
            )
    # The description names the members (``extra`` is for measured figures: /about lists it)
    listing = ", ".join(i.sha256[:12] for i in loaded)
    config = ModelConfig(
        **{f: getattr(first, f) for f in _FED_ALIKE},
        name=name or f"ensemble of {len(loaded)}: {first.name}",
        family=first.family,
        description=f"the mean logit of {len(loaded)} networks (sha256 {listing})",
        members=len(loaded),
    )
    module = LogitEnsemble([item.module for item in loaded])
    digest = save_checkpoint(module, config, out, dtype=torch.float16)
    _log.warning(
        "%s is not calibrated yet: run `deepfake-bot calibrate MANIFEST --weights %s --out ...`",
        out.name, out,
    )  # fmt: skip
    return digest


def extract_member(weights: Path, index: int, out: Path) -> str:
    """Write member ``index`` of the ensemble ``weights`` to ``out`` as a single network (fp16,
    tensors exactly as stored); returns its sha256. The ensemble's calibration belongs to the
    mean logit, not to one member, so the member gets the uncalibrated defaults."""
    loaded = load_checkpoint(weights)
    cfg = loaded.config
    if cfg.members == 1 or not isinstance(loaded.module, LogitEnsemble):
        raise ValueError(f"{weights.name} is a single network, not an ensemble")
    if not 0 <= index < cfg.members:
        raise ValueError(f"{weights.name} has members 0 to {cfg.members - 1}, not {index}")
    config = ModelConfig(
        **{f: getattr(cfg, f) for f in _FED_ALIKE},
        name=f"member {index} of {cfg.name}",
        family=cfg.family,
        description=f"network {index} of {cfg.members} in {weights.name} "
        f"(sha256 {loaded.sha256[:12]})",
    )
    digest = save_checkpoint(loaded.module.members[index], config, out, dtype=torch.float16)
    _log.warning("%s is not calibrated: its ensemble's calibration does not apply to it", out.name)
    return digest
