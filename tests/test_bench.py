"""`deepfake-bot bench --quick` runs end to end and reports every figure the issue asks for.
(Timings are reported, never asserted.)"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from bot.main import main
from detector.checkpoints import save_checkpoint
from detector.ensemble import LogitEnsemble
from detector.model import build_xception

from .conftest import TINY_CONFIG


@pytest.mark.slow
def test_quick_bench_reports_all_sections(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.md"
    code = main(["bench", "--quick", "--analyses", "8", "--weights", str(tiny_checkpoint),
                 "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert text.strip() in capsys.readouterr().out
    for needle in ("The network at 64x64", "The network at 299x299", "naive: fp32",
                   "bf16 + channels_last", "latency p50", "latency p95",
                   "32 concurrent requests", "after loading the model", "growth",
                   "largest |ΔP(fake)|", "Machine:"):
        assert needle in text, needle
    assert "Ensemble of" not in text  # a single network has no member comparison


@pytest.mark.slow
def test_quick_bench_puts_an_ensemble_beside_one_member(
    tiny_module: torch.nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(7)
    other = build_xception(2).eval()
    path = tmp_path / "pair.safetensors"
    save_checkpoint(LogitEnsemble([copy.deepcopy(tiny_module), other]),
                    TINY_CONFIG.replace(members=2), path)
    out = tmp_path / "bench.md"
    assert main(["bench", "--quick", "--analyses", "8", "--weights", str(path),
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "Ensemble of 2 against its first member alone" in text
    row = next(line for line in text.splitlines() if line.startswith("| end to end p50 (ms)"))
    assert len(row.split("|")) == 6  # member, ensemble and their ratio
    assert "largest |ΔP(fake)|" in text and "The network at 64x64" in text
