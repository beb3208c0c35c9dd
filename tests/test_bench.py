"""`deepfake-bot bench --quick` runs end to end and reports every figure the issue asks for.
(Timings are reported, never asserted.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.main import main


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
