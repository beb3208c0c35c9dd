"""Detection metrics in plain numpy: ROC AUC, EER, average precision, accuracy, ECE, and the
curves behind them. Labels: 1 = fake (positive), 0 = real; scores: P(fake)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def _check(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[F64, F64]:
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-D and the same length")
    return y, s


def roc_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[F64, F64, F64]:
    """(fpr, tpr, thresholds), thresholds decreasing, starting at +inf (nothing flagged)."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.where(np.diff(s))[0]
    idx = np.r_[distinct, len(s) - 1]
    tps = np.cumsum(y)[idx]
    fps = (idx + 1) - tps
    pos, neg = y.sum(), len(y) - y.sum()
    tpr = np.r_[0.0, tps / pos] if pos else np.full(len(idx) + 1, np.nan)
    fpr = np.r_[0.0, fps / neg] if neg else np.full(len(idx) + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s[idx]]


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (ties count half); NaN when only one class is present."""
    y, s = _check(labels, scores)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _average_ranks(s: F64) -> F64:
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def eer(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[float, float]:
    """(equal error rate, threshold there): where the false-positive rate meets the miss rate."""
    fpr, tpr, thr = roc_curve(labels, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan"), float("nan")
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2), float(thr[i])


def average_precision(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """AP = sum over thresholds of (recall step) x precision (no interpolation)."""
    y, s = _check(labels, scores)
    if y.sum() == 0:
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    pos, neg = y.sum(), len(y) - y.sum()
    tp = tpr * pos
    fp = fpr * neg if neg else np.zeros_like(tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
    return float(np.sum(np.diff(tpr) * precision[1:]))


def ece(labels: npt.ArrayLike, scores: npt.ArrayLike, bins: int = 15) -> float:
    """Expected calibration error of P(fake) as a probability of "fake" (equal-width bins)."""
    y, s = _check(labels, scores)
    if len(y) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() / len(y) * abs(s[m].mean() - y[m].mean())
    return float(total)


def reliability(
    labels: npt.ArrayLike, scores: npt.ArrayLike, bins: int = 15
) -> list[tuple[float, float, int]]:
    """Per bin: (mean predicted P(fake), observed fake rate, count)."""
    y, s = _check(labels, scores)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.any():
            out.append((float(s[m].mean()), float(y[m].mean()), int(m.sum())))
    return out


@dataclass(frozen=True)
class Metrics:
    auc: float
    acc: float
    eer: float
    ap: float
    ece: float
    n: int
    n_fake: int
    n_real: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            k: (
                None
                if isinstance(v, float) and np.isnan(v)
                else (round(v, 4) if isinstance(v, float) else v)
            )
            for k, v in asdict(self).items()
        }


def summarize(labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float = 0.5) -> Metrics:
    y, s = _check(labels, scores)
    n_fake = int(y.sum())
    acc = float(((s >= threshold) == (y == 1)).mean()) if len(y) else float("nan")
    return Metrics(
        auc=roc_auc(y, s),
        acc=acc,
        eer=eer(y, s)[0],
        ap=average_precision(y, s),
        ece=ece(y, s),
        n=len(y),
        n_fake=n_fake,
        n_real=len(y) - n_fake,
    )
