"""Which precision ``auto`` serves a weight set in: bf16 only where the CPU has native bf16 and
the weights' measured bf16 gap is within the bound; fp32 otherwise, and for unmeasured weights."""

from __future__ import annotations

import logging

import pytest

import detector.model as model_mod
from detector.config import ModelConfig
from detector.factory import runtime_options
from detector.model import BF16_TOLERANCE, RuntimeOptions


@pytest.mark.parametrize(
    ("native", "gap", "expected"),
    [
        (True, None, "fp32"),  # never measured: the reference precision
        (True, BF16_TOLERANCE / 2, "bf16"),
        (True, BF16_TOLERANCE, "bf16"),
        (True, BF16_TOLERANCE * 1.6, "fp32"),
        (False, 0.001, "fp32"),  # no native bf16: emulated bf16 would be slow
    ],
)
def test_auto_follows_the_measured_gap(
    monkeypatch: pytest.MonkeyPatch, native: bool, gap: float | None, expected: str
) -> None:
    monkeypatch.setattr(model_mod, "bf16_supported", lambda: native)
    cfg = ModelConfig(name="w", bf16_max_dp=gap)
    assert runtime_options("auto").resolved(cfg).precision == expected


def test_auto_says_why_in_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(model_mod, "bf16_supported", lambda: True)
    with caplog.at_level(logging.INFO, logger="detector.model"):
        RuntimeOptions("auto").resolved(ModelConfig(name="w", bf16_max_dp=0.016))
    assert "precision auto → fp32 for w" in caplog.text and "0.0160" in caplog.text


@pytest.mark.parametrize("native", [True, False])
def test_explicit_choices_are_kept_where_possible(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setattr(model_mod, "bf16_supported", lambda: native)
    cfg = ModelConfig(bf16_max_dp=0.5)  # an explicit bf16 overrides the measured gap
    assert runtime_options("bf16").resolved(cfg).precision == ("bf16" if native else "fp32")
    assert runtime_options("fp32").resolved(cfg).precision == "fp32"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        runtime_options("fp16")
