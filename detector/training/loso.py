"""Leave-one-method-out checks, a training tool: how well does the recipe catch a kind of fake
it never saw? ``python -m detector.training.loso prepare MANIFEST METHOD OUT_DIR`` writes a
manifest without that method's *training* rows (its validation rows stay, so the held-out
fakes are scored); train on it as usual; then ``python -m detector.training.loso score
MANIFEST METHOD WEIGHTS`` prints the AUC of the held-out method's validation fakes against
every validation real face, and the share of them passed as "no manipulation detected".

The manifest's ``method`` column names how a fake was made (``stylegan``, ``diffusion-sd21``,
``faceswap-landmark``, …); paths in the written manifest are absolute, so it can live anywhere.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from detector.training.metrics import roc_auc


def prepare(manifest: Path, method: str, out_dir: Path) -> tuple[Path, int]:
    """Write ``out_dir/manifest.csv`` without ``method``'s training rows; returns it and how
    many rows were left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    if "method" not in fields:
        raise SystemExit(f"{manifest}: no 'method' column")
    if not any(r["method"] == method for r in rows):
        raise SystemExit(f"{manifest}: no rows with method {method!r}")
    kept, dropped = [], 0
    for row in rows:
        if row["method"] == method and row.get("split") == "train":
            dropped += 1
            continue
        kept.append({**row, "path": str((manifest.parent / row["path"]).resolve())})
    out = out_dir / "manifest.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    return out, dropped


def score(manifest: Path, method: str, weights: Path) -> dict[str, Any]:
    """AUC of ``method``'s val fakes vs all val reals, with the given weights."""
    from detector.checkpoints import load_classifier
    from detector.model import RuntimeOptions
    from detector.training.evaluate import evaluate
    from detector.training.manifest import read_manifest

    classifier = load_classifier(weights, options=RuntimeOptions("fp32", True))
    result = evaluate(classifier, manifest, "val", str(weights), robustness=False, progress=False)
    # evaluate() keeps its rows in manifest order less the faceless ones: match them by path.
    faceless = {d["path"] for d in result.skipped}
    rows = [s for s in read_manifest(manifest, "val") if str(s.path) not in faceless]
    kinds = np.array([s.extra.get("method", "") for s in rows])
    srcs = np.array(result.sources)
    held = (kinds == method) & (result.labels == 1)
    reals = result.labels == 0
    mask = held | reals
    low = classifier.config.thresholds[0]
    # Against the real faces of the held-out fakes' own source(s) too: across sources, what the
    # model knows of each data set's look weighs in (a source whose reals stayed in training
    # "looks real").
    own = np.isin(srcs, np.unique(srcs[held])) & reals
    same = held | own
    return {
        "method": method,
        "weights": str(weights),
        "held_out_fakes": int(held.sum()),
        "reals": int(reals.sum()),
        "auc_vs_all_reals": round(roc_auc(result.labels[mask], result.scores[mask]), 4),
        "auc_vs_same_source_reals": (
            round(roc_auc(result.labels[same], result.scores[same]), 4) if own.any() else None
        ),
        "fakes_passed_as_real": round(float((result.scores[held] < low).mean()), 4),
        "overall_auc": result.overall["auc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("manifest", type=Path)
    p.add_argument("method")
    p.add_argument("out_dir", type=Path)
    s = sub.add_parser("score")
    s.add_argument("manifest", type=Path)
    s.add_argument("method")
    s.add_argument("weights", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        out, dropped = prepare(args.manifest, args.method, args.out_dir)
        print(f"{out}: {dropped} training rows of {args.method} left out")  # noqa: T201
    else:
        print(json.dumps(score(args.manifest, args.method, args.weights)))  # noqa: T201


if __name__ == "__main__":
    main()
