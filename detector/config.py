"""``ModelConfig``: everything a weight set needs to be used correctly, carried with it.

Input size, normalisation, interpolation and face-crop geometry differ between the public
detector families (see ``../shared/docs/checkpoints.md`` §5); so do the output head, the
calibration temperature and the verdict thresholds. A config travels with every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Interpolation = Literal["bilinear", "bicubic"]
Head = Literal["softmax", "sigmoid"]
CropMode = Literal["face", "full"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


class Band(StrEnum):
    """The three verdict bands. Values are stable identifiers for scripts and logs."""

    REAL = "no_manipulation_detected"
    UNCERTAIN = "uncertain"
    FAKE = "likely_manipulated"

    @property
    def label(self) -> str:
        return {
            Band.REAL: "No manipulation detected",
            Band.UNCERTAIN: "Uncertain",
            Band.FAKE: "Likely manipulated",
        }[self]

MAX_MEMBERS = 8  # networks in one ensemble file; each costs a full forward pass per face


@dataclass(frozen=True)
class ModelConfig:
    """Frozen description of how a weight set must be fed and read.

    ``thresholds = (low, high)``: P(fake) < low is "no manipulation detected", P(fake) >= high
    is "likely manipulated", anything between is "uncertain".
    """

    name: str = "xception"
    family: str = "deepfake-bot"
    input_size: int = 299
    mean: tuple[float, float, float] = HALF
    std: tuple[float, float, float] = HALF
    interpolation: Interpolation = "bilinear"
    crop_mode: CropMode = "face"
    crop_scale: float = 1.3
    num_classes: int = 2
    head: Head = "softmax"
    fake_index: int = 1
    temperature: float = 1.0
    # Platt offset added to the temperature-scaled fake-vs-real logit margin: corrects a model
    # whose training prior differs from the data it is calibrated on (e.g. extra pseudo-fakes).
    logit_bias: float = 0.0
    thresholds: tuple[float, float] = (0.3, 0.7)
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # Largest |P(fake) under bf16 autocast - P(fake) in fp32| measured on the calibration faces
    # (``deepfake-bot calibrate`` and the trainer's own); None when never measured. ``auto``
    # precision uses bf16 only for weights whose measured gap is within the project's bound.
    bf16_max_dp: float | None = None
    # Networks averaged by ``detector.ensemble.LogitEnsemble`` (1: a single network). Older
    # readers refuse a file with this field instead of loading half of it.
    members: int = 1

    def __post_init__(self) -> None:
        low, high = self.thresholds
        if not (0.0 <= low <= high <= 1.0):
            raise ValueError(f"need 0 <= low <= high <= 1, got thresholds {self.thresholds}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not math.isfinite(self.logit_bias):
            raise ValueError(f"logit_bias must be finite, got {self.logit_bias}")
        if self.input_size < 32:
            raise ValueError(f"input_size too small: {self.input_size}")
        if self.head == "softmax" and not (0 <= self.fake_index < self.num_classes):
            raise ValueError("fake_index out of range for a softmax head")
        if self.head == "sigmoid" and self.num_classes != 1:
            raise ValueError("a sigmoid head has exactly one output")
        if self.crop_scale < 1.0:
            raise ValueError("crop_scale must be >= 1")
        if self.bf16_max_dp is not None and not (
            math.isfinite(self.bf16_max_dp) and 0.0 <= self.bf16_max_dp <= 1.0
        ):
            raise ValueError(f"bf16_max_dp must be in [0, 1], got {self.bf16_max_dp}")
        if not 1 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"members must be 1..{MAX_MEMBERS}, got {self.members}")

    def band(self, p_fake: float) -> Band:
        low, high = self.thresholds
        if p_fake >= high:
            return Band.FAKE
        if p_fake < low:
            return Band.REAL
        return Band.UNCERTAIN

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("model config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        for key in ("mean", "std", "thresholds"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


# Preprocessing of each public family (checkpoints.md §5). The thresholds of public weights
# are the conventional 0.5 split widened into an "uncertain" band; they are not calibrated.
FAMILY_CONFIGS: dict[str, ModelConfig] = {
    "ffpp": ModelConfig(
        name="FaceForensics++ Xception (face crops)",
        family="ffpp",
        description="FF++ official face-crop model: dlib face, 1.3x square crop, 299, mean=std=0.5",
    ),
    "ffpp-full": ModelConfig(
        name="FaceForensics++ Xception (full frame)",
        family="ffpp-full",
        crop_mode="full",
        description="FF++ official full-frame model: the whole image resized to 299",
    ),
    "hongguliu": ModelConfig(
        name="HongguLiu Deepfake-Detection Xception",
        family="hongguliu",
        description="FF++-style face-crop model (dlib, 1.3x crop, 299, mean=std=0.5)",
    ),
    "deepfakebench": ModelConfig(
        name="DeepfakeBench Xception",
        family="deepfakebench",
        input_size=256,
        interpolation="bicubic",
        description=(
            "DeepfakeBench xception_best: 256px, bicubic, mean=std=0.5. DeepfakeBench aligns "
            "faces with 81 landmarks; here the 1.3x square crop is used instead"
        ),
    ),
    "ispl": ModelConfig(
        name="ISPL icpr2020dfdc Xception",
        family="ispl",
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_classes=1,
        head="sigmoid",
        fake_index=0,
        description="polimi-ispl Xception: 224px, ImageNet mean/std, single logit (sigmoid)",
    ),
}
