"""Leave-one-method-out: the written manifest drops only the held-out method's training rows,
and scoring reports that method's validation fakes against every validation real face."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from detector.training.loso import prepare, score
from detector.training.manifest import read_manifest


def _with_methods(tiny_set: Path, tmp_path: Path) -> Path:
    with tiny_set.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        row["method"] = "original" if row["label"] == "real" else ("paste" if i % 4 == 1 else "x")
        row["path"] = str((tiny_set.parent / row["path"]).resolve())
    out = tmp_path / "m.csv"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def test_prepare_leaves_out_only_the_training_rows_of_one_method(
    tiny_set: Path, tmp_path: Path
) -> None:
    manifest = _with_methods(tiny_set, tmp_path)
    out, dropped = prepare(manifest, "paste", tmp_path / "loso")
    before, after = read_manifest(manifest), read_manifest(out)
    assert dropped == sum(1 for s in before if s.extra["method"] == "paste" and s.split == "train")
    assert dropped > 0 and len(after) == len(before) - dropped
    assert not [s for s in after if s.extra["method"] == "paste" and s.split == "train"]
    assert [s for s in after if s.extra["method"] == "paste" and s.split == "val"]
    assert all(s.path.exists() for s in after)


def test_score_counts_the_held_out_fakes(
    tiny_set: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _with_methods(tiny_set, tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    report = score(manifest, "paste", tiny_checkpoint)
    val = read_manifest(manifest, "val")
    assert report["held_out_fakes"] == sum(1 for s in val if s.extra["method"] == "paste")
    assert report["reals"] == sum(1 for s in val if s.label == 0) - 1  # the coffee cup: no face
    assert 0.0 <= report["auc_vs_all_reals"] <= 1.0
    assert 0.0 <= report["auc_vs_same_source_reals"] <= 1.0  # the tiny set's sources hold reals
    assert 0.0 <= report["fakes_passed_as_real"] <= 1.0
