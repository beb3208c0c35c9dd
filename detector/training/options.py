"""What a training run is told: :class:`TrainOptions` (what ``deepfake-bot train`` passes in,
recorded in every checkpoint so a resumed run can check it) and the ``--cell-weight`` parser."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.training.manifest import FAKE, REAL


@dataclass
class TrainOptions:
    manifest: Path
    out: Path
    input_size: int = 160
    batch_size: int = 32
    epochs: int = 40
    samples_per_epoch: int = 0  # 0: as many as there are training images
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int = 300
    drop_rate: float = 0.3
    precision: str = "auto"  # auto | bf16 | fp32
    channels_last: bool = True
    sbi: float = 0.3
    sbi_mask: str = "auto"  # auto | landmarks | ellipse (auto: landmarks when the model is there)
    sharpen: tuple[float, float] = (0.35, 0.1)  # chance a (real, fake) crop is made large+sharp
    soften: tuple[float, float] = (0.1, 0.3)  # chance a (real, fake) crop is made small+soft
    balance: str = "sqrt"  # sqrt | equal | none: sampling weight of each (source, label) cell
    cell_weights: tuple[str, ...] = ()  # "source:label=factor", e.g. "ffhq:real=3"
    head_lr_mult: float = 1.0  # the new head's learning rate relative to the backbone's
    pair: float = 0.0  # chance that a drawn image brings its other-label group partner along
    mask_loss: float = 0.0  # weight of the manipulation-map loss on partner pairs (needs pair)
    patience: int = 6
    workers: int = 1
    seed: int = 0
    max_steps: int = 0  # 0: no limit (tests and smoke runs set it)
    save_every: int = 200
    log_every: int = 25
    cache_dir: Path | None = None
    train_split: str = "train"
    val_split: str = "val"
    name: str = "deepfake-bot Xception"
    progress: bool = True
    init: Path | None = None  # start from these weights (fine-tuning) instead of random ones
    init_family: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()
        }


def parse_cell_weights(specs: Sequence[str]) -> dict[tuple[str, int], float]:
    """``["ffhq:real=3"]`` → ``{("ffhq", REAL): 3.0}``."""
    out: dict[tuple[str, int], float] = {}
    for spec in specs:
        cell, _, factor = spec.partition("=")
        source, _, label = cell.partition(":")
        if label not in {"real", "fake"} or not source or not factor:
            raise ValueError(f"cell weight {spec!r}: expected SOURCE:real=F or SOURCE:fake=F")
        value = float(factor)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"cell weight {spec!r}: the factor must be positive")
        out[(source, REAL if label == "real" else FAKE)] = value
    return out
