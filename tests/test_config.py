"""ModelConfig validation, bands and serialisation."""

from __future__ import annotations

import pytest

from detector.config import FAMILY_CONFIGS, Band, ModelConfig


def test_json_round_trip_keeps_every_field() -> None:
    cfg = ModelConfig(
        name="x", temperature=1.7, thresholds=(0.2, 0.8), extra={"k": "v"}, bf16_max_dp=0.004
    )
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg
    assert isinstance(again.mean, tuple) and isinstance(again.thresholds, tuple)


def test_configs_written_before_a_field_existed_still_load() -> None:
    assert ModelConfig.from_json('{"name": "old"}').bf16_max_dp is None


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_json('{"name": "x", "surprise": 1}')


@pytest.mark.parametrize(
    "changes",
    [
        {"thresholds": (0.8, 0.2)},
        {"thresholds": (-0.1, 0.5)},
        {"temperature": 0.0},
        {"temperature": float("nan")},
        {"fake_index": 2},
        {"head": "sigmoid", "num_classes": 2},
        {"crop_scale": 0.5},
        {"input_size": 8},
        {"bf16_max_dp": -0.01},
        {"bf16_max_dp": float("nan")},
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ModelConfig(**changes)  # type: ignore[arg-type]


def test_bands() -> None:
    cfg = ModelConfig(thresholds=(0.25, 0.75))
    assert [cfg.band(p) for p in (0.0, 0.2499, 0.25, 0.5, 0.7499, 0.75, 1.0)] == [
        Band.REAL, Band.REAL, Band.UNCERTAIN, Band.UNCERTAIN, Band.UNCERTAIN, Band.FAKE, Band.FAKE,
    ]
    assert Band.FAKE.label == "Likely manipulated"


def test_family_preprocessing_matches_checkpoints_md() -> None:
    assert FAMILY_CONFIGS["ffpp"].input_size == 299 and FAMILY_CONFIGS["ffpp"].mean == (0.5,) * 3
    assert FAMILY_CONFIGS["ffpp-full"].crop_mode == "full"
    assert FAMILY_CONFIGS["deepfakebench"].input_size == 256
    assert FAMILY_CONFIGS["deepfakebench"].interpolation == "bicubic"
    ispl = FAMILY_CONFIGS["ispl"]
    assert (ispl.input_size, ispl.head, ispl.num_classes) == (224, "sigmoid", 1)
    assert ispl.mean == (0.485, 0.456, 0.406) and ispl.std == (0.229, 0.224, 0.225)
    assert all(c.fake_index == 1 for k, c in FAMILY_CONFIGS.items() if k != "ispl")
