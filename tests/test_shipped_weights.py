"""The weights the project ships: present, matching their manifest hash, carrying a calibrated
config with measured figures, and used by every command when no --weights is given."""

from __future__ import annotations

import json

import pytest

from bot.main import main
from detector.checkpoints import default_weights_path, load_checkpoint, sha256_file

from .conftest import REPO, SAMPLES

SHIPPED = REPO / "weights" / "deepfake-bot-xception.safetensors"


def test_shipped_weights_match_the_manifest_and_carry_their_calibration() -> None:
    manifest = json.loads((REPO / "weights" / "manifest.json").read_text())
    entry = manifest["files"][SHIPPED.name]
    assert sha256_file(SHIPPED) == entry["sha256"]
    loaded = load_checkpoint(SHIPPED)
    cfg = loaded.config
    assert loaded.family == "deepfake-bot" and cfg.input_size == 167
    assert cfg.temperature != 1.0 and cfg.thresholds != (0.3, 0.7)  # calibrated, not defaults
    assert any(k.startswith("AUC on val") for k in cfg.extra)  # figures for /about
    assert cfg.bf16_max_dp is not None  # measured, so `auto` precision can decide on it
    assert (REPO / "weights" / "MODEL_CARD.md").exists()


def test_default_weights_are_the_shipped_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPFAKE_BOT_WEIGHTS", raising=False)
    assert default_weights_path().resolve() == SHIPPED.resolve()


def test_check_without_weights_uses_the_shipped_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEEPFAKE_BOT_WEIGHTS", raising=False)
    assert main(["check", "--json", str(SAMPLES / "astronaut.jpg")]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["error"] is None and len(row["faces"]) == 1
    assert 0.0 <= row["p_fake"] <= 1.0
