"""``deepfake-bot eval`` on tiny generated data with a tiny real checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.main import main
from detector.training.evaluate import cross_source_aucs


def test_eval_json_schema_skips_listed_and_plots(
    tiny_set: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    plots = tmp_path / "plots"
    code = main(["eval", str(tiny_set), "--weights", str(tiny_checkpoint), "--json", str(out),
                 "--plots", str(plots), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["overall"]) >= {"auc", "acc", "eer", "ap", "ece", "n"}
    assert report["split"] == "val"  # auto: the manifest has a val split
    assert report["overall"]["n"] == 12
    assert set(report["by_source"]) == {"a", "b"}
    assert sum(m["n"] for m in report["by_source"].values()) == 12
    # The no-face picture is listed with its reason, not silently dropped.
    assert [Path(s["path"]).name for s in report["skipped"]] == ["coffee.jpg"]
    assert "face" in report["skipped"][0]["error"].lower()
    assert set(report["robustness"]) == {"jpeg_q50", "half_resolution", "sharp_upscale_2x"}
    assert all(0 <= r["auc"] <= 1 for r in report["robustness"].values())
    assert set(report["robustness"]["sharp_upscale_2x"]["real_p_fake_change"]) == {"a", "b"}
    # What users see at the thresholds, per source, consistent with the scores.
    for m in [report["overall"], *report["by_source"].values()]:
        assert 0 <= m["real_called_fake"] + m["real_uncertain"] <= 1
        assert 0 <= m["fake_passed_as_real"] + m["fake_uncertain"] <= 1
    assert (plots / "roc.png").stat().st_size > 1000
    assert (plots / "reliability.png").stat().st_size > 1000
    text = capsys.readouterr().out
    assert "overall" in text and "No face found" in text and "real called" in text


def test_eval_stamps_figures_into_a_copy_of_the_weights(
    tiny_set: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from detector.checkpoints import load_checkpoint

    stamped = tmp_path / "stamped.safetensors"
    assert main(["eval", str(tiny_set), "--weights", str(tiny_checkpoint), "--no-robustness",
                 "--cache-dir", str(tmp_path), "--stamp-into", str(stamped)]) == 0
    extra = load_checkpoint(stamped).config.extra
    assert any(k.startswith("AUC on val") for k in extra)
    assert "AUC on a" in extra and "AUC on b" in extra


def test_eval_all_rows(tiny_set: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    assert main(["eval", str(tiny_set), "--weights", str(tiny_checkpoint), "--split", "all",
                 "--json", str(out), "--no-robustness", "--cache-dir", str(tmp_path)]) == 0
    report = json.loads(out.read_text())
    assert report["overall"]["n"] == 48 and report["robustness"] == {}
    assert "per_image" not in report  # only with --per-image


def test_cross_source_auc_exposes_dataset_shortcuts() -> None:
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    # A "model" that only recognises source "gan" (fake-only) and "chips" (real-only).
    sources = ["chips", "chips", "gan", "gan", "mix", "mix", "mix", "mix"]
    scores = np.array([0.0, 0.1, 0.9, 1.0, 0.5, 0.5, 0.5, 0.5])
    out = cross_source_aucs(labels, scores, sources)
    assert out["chips real vs gan fake"] == 1.0
    assert out["chips real vs mix fake"] == 1.0
    assert out["mix real vs gan fake"] == 1.0


def test_band_shares_count_what_users_see() -> None:
    from detector.training.evaluate import band_shares

    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.5, 0.8, 0.2, 0.9, 0.95, 0.4, 0.05])
    shares = band_shares(labels, scores, low=0.3, high=0.7)
    assert shares == {"real_called_fake": 0.25, "real_uncertain": 0.25,
                      "fake_passed_as_real": 0.25, "fake_uncertain": 0.25}
    assert band_shares(labels[:4], scores[:4], 0.3, 0.7)["fake_passed_as_real"] is None


def test_eval_all_real_manifest_reports_false_alarms_and_per_image_scores(
    tiny_set: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    # A held-out set of real photos only: AUC is undefined, the run must still report what
    # users would see (share called fake / uncertain) and each image's P(fake).
    import csv

    rows = [r for r in csv.DictReader((tiny_set).open()) if r["label"] == "real"]
    manifest = tiny_set.parent / "reals-only.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "split": "heldout"} for r in rows)
    out = tmp_path / "eval.json"
    assert main(["eval", str(manifest), "--weights", str(tiny_checkpoint), "--split", "heldout",
                 "--json", str(out), "--per-image", "--no-robustness",
                 "--cache-dir", str(tmp_path)]) == 0
    report = json.loads(out.read_text())
    overall = report["overall"]
    assert overall["n_fake"] == 0 and overall["auc"] is None
    assert overall["fake_passed_as_real"] is None
    assert 0 <= overall["real_called_fake"] + overall["real_uncertain"] <= 1
    per_image = report["per_image"]
    assert len(per_image) == overall["n"] == len(rows) - len(report["skipped"])
    assert {Path(r["path"]).name for r in per_image} | {
        Path(s["path"]).name for s in report["skipped"]} == {r["path"] for r in rows}
    assert all(r["label"] == 0 and 0 <= r["p_fake"] <= 1 for r in per_image)
