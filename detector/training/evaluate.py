"""``deepfake-bot eval``: quality of any supported checkpoint on a labelled manifest.

Faces are found and cropped exactly as in serving (the same face-box cache as training). Images
where no face is found are counted and listed, never dropped silently. Reports AUC, accuracy,
EER, AP and ECE overall and per source; for sources that hold one class only (a data set that is
all real or all fake) it reports cross-source AUCs, which show whether the model separates
*data sets* rather than real from fake; and robustness rows (whole picture re-encoded as JPEG
quality 50, at half resolution, and 2x LANCZOS-upscaled and sharpened); and what users see at
the model's thresholds: per source, the share of real faces called "likely manipulated" and of
fakes passed as "no manipulation detected".
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter
from tqdm import tqdm

from detector.faces import Box
from detector.model import Classifier
from detector.training.manifest import (
    RegionCache,
    Sample,
    default_cache_dir,
    load_inputs,
    read_manifest,
)
from detector.training.metrics import reliability, roc_auc, roc_curve, summarize

_log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]


def jpeg_q50(rgb: U8) -> U8:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=50)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def half_resolution(rgb: U8) -> U8:
    img = Image.fromarray(rgb)
    w, h = img.size
    return np.asarray(img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR))


def sharp_upscale_2x(rgb: U8) -> U8:
    """The look of a good-quality large photo: 2x LANCZOS and a mild unsharp mask. A detector
    that learned "sharp = fake" raises real faces' P(fake) here."""
    img = Image.fromarray(rgb)
    w, h = img.size
    img = img.resize((w * 2, h * 2), Image.Resampling.LANCZOS)
    return np.asarray(img.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2)))


ROBUSTNESS: dict[str, Callable[[U8], U8]] = {
    "jpeg_q50": jpeg_q50,
    "half_resolution": half_resolution,
    "sharp_upscale_2x": sharp_upscale_2x,
}


def band_shares(
    labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], low: float, high: float
) -> dict[str, float | None]:
    """What users see at the model's thresholds: real faces called "likely manipulated" (false
    alarms), fakes passed as "no manipulation detected", and the "uncertain" share of each."""
    reals, fakes = scores[labels == 0], scores[labels == 1]

    def share(x: npt.NDArray[np.bool_]) -> float | None:
        return round(float(x.mean()), 4) if len(x) else None

    return {
        "real_called_fake": share(reals >= high),
        "real_uncertain": share((reals >= low) & (reals < high)),
        "fake_passed_as_real": share(fakes < low),
        "fake_uncertain": share((fakes >= low) & (fakes < high)),
    }


@dataclass
class EvalResult:
    split: str
    weights: str
    model: str
    overall: dict[str, Any]
    by_source: dict[str, dict[str, Any]]
    cross_source: dict[str, float | None]
    robustness: dict[str, dict[str, Any]]
    skipped: list[dict[str, str]]
    fallback_whole_image: int
    labels: npt.NDArray[np.int64] = field(repr=False)
    scores: npt.NDArray[np.float64] = field(repr=False)
    sources: list[str] = field(repr=False)
    paths: list[str] = field(default_factory=list, repr=False)

    def to_json(self, per_image: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "overall": self.overall,
            "by_source": self.by_source,
            "skipped": self.skipped,
            "cross_source_auc": self.cross_source,
            "robustness": self.robustness,
            "split": self.split,
            "weights": self.weights,
            "model": self.model,
            "fallback_whole_image": self.fallback_whole_image,
        }
        if per_image:
            # Every scored image with its P(fake): on a one-class set (all real, e.g. the
            # held-out photos) AUC is undefined and these, with the band shares, are the result.
            out["per_image"] = [
                {"path": p, "source": s, "label": int(y), "p_fake": round(float(v), 4)}
                for p, s, y, v in zip(self.paths, self.sources, self.labels, self.scores,
                                      strict=True)
            ]
        return out


def _none_if_nan(v: float) -> float | None:
    return None if np.isnan(v) else round(float(v), 4)


def cross_source_aucs(
    labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], sources: Sequence[str]
) -> dict[str, float | None]:
    """For every source holding one class only, its AUC against the other class of each other
    source (e.g. "utkface real vs boredhumans fake"). A model that learned the data sets, not
    the manipulation, shows high AUC only on pairs of different data sets."""
    src = np.asarray(sources)
    names = sorted(set(sources))
    classes = {n: set(labels[src == n].tolist()) for n in names}
    out: dict[str, float | None] = {}
    for a in names:
        if len(classes[a]) != 1:
            continue
        (cls,) = classes[a]
        for b in names:
            if b == a:
                continue
            other = (src == b) & (labels != cls)
            if not other.any():
                continue
            mask = (src == a) | other
            real, fake = (a, b) if cls == 0 else (b, a)
            out[f"{real} real vs {fake} fake"] = _none_if_nan(roc_auc(labels[mask], scores[mask]))
    return out


def evaluate(
    classifier: Classifier,
    manifest: Path,
    split: str | None,
    weights_name: str,
    cache_dir: Path | None = None,
    robustness: bool = True,
    progress: bool = True,
    batch: int = 32,
) -> EvalResult:
    cfg = classifier.config
    samples = read_manifest(manifest, split)
    if not samples:
        raise ValueError(f"{manifest}: no rows" + (f" in split '{split}'" if split else ""))
    cache = RegionCache(cache_dir or default_cache_dir(), crop_scale=cfg.crop_scale)
    with tqdm(total=len(samples), desc="finding faces", disable=not progress, unit="img") as bar:
        regions = cache.regions(samples, progress=bar.update)
    pairs: list[tuple[Sample, Box]] = []
    skipped: list[dict[str, str]] = []
    fallback = 0
    for s, r in zip(samples, regions, strict=True):
        if r.crop is None:
            skipped.append({"path": str(s.path), "error": r.error or "no face found"})
            continue
        fallback += not r.found
        crop = Box(0, 0, r.width, r.height) if cfg.crop_mode == "full" else r.crop
        pairs.append((s, crop))
    labels = np.array([s.label for s, _ in pairs], dtype=np.int64)
    sources = [s.source for s, _ in pairs]

    def score(transform: Callable[[U8], U8] | None, desc: str) -> npt.NDArray[np.float64]:
        with tqdm(total=len(pairs), desc=desc, disable=not progress, unit="img") as bar:
            inputs = load_inputs(pairs, cfg.input_size, cfg.interpolation, transform=transform)
            out = []
            for i in range(0, len(inputs), batch):
                out.append(classifier.predict(inputs[i : i + batch]))
                bar.update(min(batch, len(inputs) - i))
        return np.concatenate(out) if out else np.zeros(0)

    scores = score(None, "scoring")
    low, high = cfg.thresholds
    overall = {**summarize(labels, scores).to_dict(), **band_shares(labels, scores, low, high)}
    by_source = {}
    src = np.asarray(sources)
    for name in sorted(set(sources)):
        m = src == name
        by_source[name] = {
            **summarize(labels[m], scores[m]).to_dict(),
            **band_shares(labels[m], scores[m], low, high),
        }
    robust: dict[str, dict[str, Any]] = {}
    if robustness:
        for name, fn in ROBUSTNESS.items():
            s2 = score(fn, name)
            auc2 = roc_auc(labels, s2)
            robust[name] = {
                "auc": _none_if_nan(auc2),
                "auc_drop": _none_if_nan(roc_auc(labels, scores) - auc2),
                "by_source_auc": {
                    n: _none_if_nan(roc_auc(labels[src == n], s2[src == n]))
                    for n in sorted(set(sources))
                },
                # Mean change of real faces' P(fake) per source: must not rise (sharpness
                # or size alone must not look like manipulation).
                "real_p_fake_change": {
                    n: round(float((s2 - scores)[(src == n) & (labels == 0)].mean()), 4)
                    for n in sorted(set(sources))
                    if ((src == n) & (labels == 0)).any()
                },
                "real_called_fake": band_shares(labels, s2, low, high)["real_called_fake"],
            }
    return EvalResult(
        split=split or "all",
        weights=weights_name,
        model=cfg.name,
        overall=overall,
        by_source=by_source,
        cross_source=cross_source_aucs(labels, scores, sources),
        robustness=robust,
        skipped=skipped,
        fallback_whole_image=fallback,
        labels=labels,
        scores=scores,
        sources=sources,
        paths=[str(s.path) for s, _ in pairs],
    )


def write_plots(result: EvalResult, out_dir: Path) -> list[Path]:
    """ROC curves (overall and per two-class source) and a reliability diagram, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    y, s, src = result.labels, result.scores, np.asarray(result.sources)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    curves = [("overall", np.ones(len(y), dtype=bool))] + [
        (n, src == n) for n in sorted(set(result.sources)) if len(set(y[src == n].tolist())) == 2
    ]
    for name, m in curves:
        fpr, tpr, _ = roc_curve(y[m], s[m])
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y[m], s[m]):.3f}, n={int(m.sum())})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate (real called fake)", ylabel="true-positive rate",
           title=f"ROC — {result.model}")
    ax.legend(loc="lower right", fontsize=8)
    roc_path = out_dir / "roc.png"
    fig.tight_layout()
    fig.savefig(roc_path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    bins = reliability(y, s)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.plot([b[0] for b in bins], [b[1] for b in bins], "o-", label="model")
    for mean_p, frac, n in bins:
        ax.annotate(str(n), (mean_p, frac), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set(xlabel="predicted P(fake)", ylabel="observed share of fakes", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability (ECE {result.overall['ece']})")
    ax.legend(loc="upper left", fontsize=8)
    rel_path = out_dir / "reliability.png"
    fig.tight_layout()
    fig.savefig(rel_path)
    plt.close(fig)
    return [roc_path, rel_path]


def render_text(result: EvalResult) -> str:
    """A Markdown summary (for the terminal and the model card)."""

    def row(name: str, m: dict[str, Any]) -> str:
        def f(v: float | None) -> str:
            return "—" if v is None else f"{v:.3f}"

        return (f"| {name} | {m['n']} ({m['n_real']} real / {m['n_fake']} fake) | {f(m['auc'])} "
                f"| {f(m['acc'])} | {f(m['eer'])} | {f(m['ap'])} | {f(m['ece'])} |")

    lines = [
        f"Evaluation of {result.model} ({result.weights}) on split '{result.split}'.",
        "",
        "| source | n | AUC | acc@0.5 | EER | AP | ECE |",
        "|---|---|---:|---:|---:|---:|---:|",
        row("**overall**", result.overall),
        *[row(k, v) for k, v in result.by_source.items()],
        "",
    ]
    if result.cross_source:
        lines += ["| cross-source pair | AUC |", "|---|---:|"]
        lines += [f"| {k} | {'—' if v is None else f'{v:.3f}'} |"
                  for k, v in result.cross_source.items()]
        lines.append("")
    def pct(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.1f}%"

    lines += [
        "At the shipped thresholds (what users see):",
        "",
        "| source | real called “likely manipulated” | real “uncertain” | fake passed as "
        "“no manipulation” | fake “uncertain” |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in [("**overall**", result.overall), *result.by_source.items()]:
        lines.append(f"| {name} | {pct(m.get('real_called_fake'))} | "
                     f"{pct(m.get('real_uncertain'))} | {pct(m.get('fake_passed_as_real'))} | "
                     f"{pct(m.get('fake_uncertain'))} |")
    lines.append("")
    if result.robustness:
        lines += ["| robustness | AUC | drop vs clean | real called fake | mean ΔP(fake) of "
                  "real faces by source |", "|---|---:|---:|---:|---|"]
        for k, v in result.robustness.items():
            change = ", ".join(f"{n} {d:+.3f}" for n, d in v.get("real_p_fake_change", {}).items())
            lines.append(f"| {k} | {v['auc']} | {v['auc_drop']} | "
                         f"{pct(v.get('real_called_fake'))} | {change} |")
        lines.append("")
    lines.append(f"No face found (not scored, listed in the JSON): {len(result.skipped)}; "
                 f"pre-cropped faces scored as the whole image: {result.fallback_whole_image}.")
    return "\n".join(lines)


def write_json(result: EvalResult, path: Path, per_image: bool = False) -> None:
    path.write_text(json.dumps(result.to_json(per_image), indent=2), encoding="utf-8")


def card_figures(result: EvalResult) -> dict[str, str]:
    """Short, user-facing figures for the checkpoint's config (shown by the bots' /about)."""
    o = result.overall
    out = {
        f"AUC on {result.split} ({o['n']} faces, all sources)": f"{o['auc']:.3f}",
        f"accuracy at 50% on {result.split}": f"{o['acc']:.3f}",
        "calibration error (ECE)": f"{o['ece']:.3f}",
    }
    for name, m in result.by_source.items():
        if m["auc"] is not None:
            out[f"AUC on {name}"] = f"{m['auc']:.3f}"
    jpeg = result.robustness.get("jpeg_q50")
    if jpeg and jpeg["auc_drop"] is not None:
        out["AUC change after JPEG quality 50"] = f"{-jpeg['auc_drop']:+.3f}"
    return out
