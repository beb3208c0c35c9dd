"""The classifier's ``device`` option (the Ray Serve scorer runs it on ``cuda`` when its replica
has a GPU); checked on the CPU here: the explicit device changes nothing and is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detector.factory import build_classifier
from detector.model import Classifier, RuntimeOptions

from .conftest import TINY_CONFIG


def test_an_explicit_cpu_device_scores_as_the_default(tiny_module: torch.nn.Module) -> None:
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    default = Classifier(tiny_module, TINY_CONFIG, RuntimeOptions("fp32", False))
    on_cpu = Classifier(tiny_module, TINY_CONFIG, RuntimeOptions("fp32", False, device="cpu"))
    assert on_cpu.options.device == "cpu"
    np.testing.assert_array_equal(on_cpu.predict(crops), default.predict(crops))


def test_the_device_survives_precision_resolution() -> None:
    resolved = RuntimeOptions("auto", True, device="cuda:1").resolved(TINY_CONFIG)
    assert resolved.device == "cuda:1" and resolved.precision in ("fp32", "bf16")


def test_build_classifier_takes_a_device(tiny_checkpoint: Path) -> None:
    classifier = build_classifier(tiny_checkpoint, precision="fp32", threads=1, device="cpu")
    assert classifier.options.device == "cpu"
    assert classifier.predict(np.zeros((1, 64, 64, 3), np.uint8)).shape == (1,)
