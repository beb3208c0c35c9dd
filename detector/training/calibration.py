"""Calibration on validation data: temperature scaling (Guo et al. 2017) and the thresholds of
the three verdict bands, both stored in the checkpoint's ModelConfig; ``calibrate_model`` fits
them for a trained network (and measures its bf16 gap), ``run_calibration`` for any supported
checkpoint (``deepfake-bot calibrate``)."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from detector.checkpoints import save_checkpoint
from detector.config import ModelConfig
from detector.model import Classifier, RuntimeOptions, bf16_supported
from detector.training.manifest import (
    RegionCache,
    default_cache_dir,
    load_inputs,
    read_manifest,
    usable,
)
from detector.training.metrics import ece

_log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]


def _nll(margins: F64, labels: F64, temperature: float) -> float:
    z = margins / temperature
    # log(1 + exp(-z)) for fakes, log(1 + exp(z)) for reals, computed stably
    signed = np.where(labels == 1, -z, z)
    return float(np.mean(np.logaddexp(0.0, signed)))


def fit_temperature(margins: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The T > 0 that minimises the NLL of sigmoid(margin / T). ``margin`` is the fake-vs-real
    logit difference (or the single logit of a sigmoid head). Golden-section search on log T."""
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(m) == 0 or y.min() == y.max():
        raise ValueError("temperature scaling needs both classes")
    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(m, y, math.exp(a)), _nll(m, y, math.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(m, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(m, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def fit_platt(margins: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """(T, b) minimising the NLL of sigmoid(margin / T + b): temperature scaling plus an offset
    (Platt 1999), by Newton's method on the 1-D logistic regression ``a * margin + b``."""
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(m) == 0 or y.min() == y.max():
        raise ValueError("calibration needs both classes")
    a = 1.0 / fit_temperature(m, y)  # a good start: the pure temperature solution
    b = 0.0
    x = np.stack([m, np.ones_like(m)], axis=1)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a * m + b)))
        grad = x.T @ (p - y) / len(m)
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(m) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        raise ValueError("the scores do not rise with the fake label: cannot calibrate")
    return 1.0 / a, float(b)


# The verdict bands' limits (the issue's targets): at most 3% of any real source's faces in
# "likely manipulated", at most 10% of any fake source's in "no manipulation detected".
MAX_FPR = 0.03
MAX_FNR = 0.10


@dataclass(frozen=True)
class BandThresholds:
    low: float
    high: float
    fpr_at_high: float  # share of real faces called "likely manipulated"
    fnr_at_low: float  # share of fake faces called "no manipulation detected"


def choose_thresholds(
    p_fake: npt.ArrayLike,
    labels: npt.ArrayLike,
    max_fpr: float = 0.05,
    max_fnr: float = 0.10,
    bounds: tuple[float, float] = (0.05, 0.99),
    sources: Sequence[str] | None = None,
) -> BandThresholds:
    """``high``: the lowest threshold at which at most ``max_fpr`` of real faces are called
    "likely manipulated"; ``low``: the highest threshold under which at most ``max_fnr`` of
    fakes are called "no manipulation detected". Between them the verdict is "uncertain". If the
    two cross (a well-separated model), they are swapped, which satisfies both limits.

    With ``sources``, both limits hold on *every* source, not just pooled: ``high`` is the
    largest of the per-source thresholds and ``low`` the smallest, so a kind of real photo the
    model finds hard (sharp portraits) cannot hide its false alarms among easy ones; the
    uncertain band absorbs the rest. The reported rates are the worst source's."""
    p = np.asarray(p_fake, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    src = np.asarray(sources if sources is not None else ["all"] * len(p))
    highs, lows = [], []
    for name in sorted(set(src.tolist())):
        m = src == name
        reals, fakes = np.sort(p[m & (y == 0)]), np.sort(p[m & (y == 1)])
        if len(reals):
            # Lowest t with mean(reals >= t) <= max_fpr: just above the k-th largest real.
            k = math.floor(max_fpr * len(reals))
            highs.append(float(np.nextafter(reals[-k - 1], np.inf)) if k < len(reals) else 0.0)
        if len(fakes):
            # P(fake) < t is "real"; highest t with a miss rate <= max_fnr.
            k = math.floor(max_fnr * len(fakes))
            lows.append(float(fakes[k]) if k < len(fakes) else 1.0)
    high = max(highs) if highs else 1.0
    low = min(lows) if lows else 0.0
    low, high = min(low, high), max(low, high)
    low = min(max(low, bounds[0]), bounds[1])
    high = min(max(high, bounds[0]), bounds[1])
    fpr_high, fnr_low = 0.0, 0.0
    for name in sorted(set(src.tolist())):
        m = src == name
        reals, fakes = p[m & (y == 0)], p[m & (y == 1)]
        if len(reals):
            fpr_high = max(fpr_high, float((reals >= high).mean()))
        if len(fakes):
            fnr_low = max(fnr_low, float((fakes < low).mean()))
    if not (y == 0).any():
        fpr_high = float("nan")
    if not (y == 1).any():
        fnr_low = float("nan")
    return BandThresholds(low, high, fpr_high, fnr_low)


def _fold_of(group: str, folds: int) -> int:
    return int.from_bytes(hashlib.sha256(group.encode("utf-8")).digest()[:4], "big") % folds


def crossfit_ece(
    margins: npt.ArrayLike, labels: npt.ArrayLike, groups: Sequence[str], folds: int = 2
) -> float:
    """ECE of :func:`fit_platt` measured on data it was not fitted on.

    The samples are split into ``folds`` by a hash of their group (source video / image, so no
    group is on both sides); each fold is scored with the calibration fitted on the others and
    the ECE of the pooled held-out probabilities is returned. ECE on the calibration data itself
    is optimistic; this is the honest figure. NaN if a fold lacks one of the classes.
    """
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(groups) != len(m) or len(y) != len(m):
        raise ValueError("margins, labels and groups must have the same length")
    fold = np.array([_fold_of(g, folds) for g in groups])
    p = np.empty_like(m)
    for k in range(folds):
        held = fold == k
        fit = ~held
        if not held.any() or len(np.unique(y[fit])) < 2:
            return float("nan")
        temperature, bias = fit_platt(m[fit], y[fit])
        p[held] = 1.0 / (1.0 + np.exp(-(m[held] / temperature + bias)))
    return ece(y, p)


@dataclass(frozen=True)
class HeldoutBands:
    """Per source: the share of real faces called "likely manipulated" and of fakes passed as
    "no manipulation detected", measured on faces the bands were not chosen on."""

    fpr_by_source: dict[str, float]
    fnr_by_source: dict[str, float]

    @property
    def fpr_at_high(self) -> float:
        return max(self.fpr_by_source.values(), default=float("nan"))

    @property
    def fnr_at_low(self) -> float:
        return max(self.fnr_by_source.values(), default=float("nan"))


def crossfit_bands(
    margins: npt.ArrayLike,
    labels: npt.ArrayLike,
    groups: Sequence[str],
    sources: Sequence[str],
    max_fpr: float = MAX_FPR,
    max_fnr: float = MAX_FNR,
    folds: int = 2,
) -> HeldoutBands | None:
    """What the verdict bands really do on faces they were not chosen on.

    :func:`choose_thresholds` puts ``high`` just above the worst source's highest real faces,
    so on those very faces the false-alarm limit holds by construction; with a few dozen faces
    in a source (FFHQ's 54 sharp portraits) that says little. Here the calibration and both
    thresholds are fitted on the other folds' groups and applied to each fold, and the pooled
    held-out verdicts are counted per source. ``None`` if a fold lacks a class.
    """
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    src = np.asarray(sources)
    if not (len(groups) == len(src) == len(y) == len(m)):
        raise ValueError("margins, labels, groups and sources must have the same length")
    fold = np.array([_fold_of(g, folds) for g in groups])
    called, passed = np.zeros(len(m), bool), np.zeros(len(m), bool)
    for k in range(folds):
        held, fit = fold == k, fold != k
        if not held.any() or len(np.unique(y[fit])) < 2:
            return None
        temperature, bias = fit_platt(m[fit], y[fit])
        p_fit = 1.0 / (1.0 + np.exp(-(m[fit] / temperature + bias)))
        bands = choose_thresholds(p_fit, y[fit], max_fpr, max_fnr, sources=list(src[fit]))
        p = 1.0 / (1.0 + np.exp(-(m[held] / temperature + bias)))
        called[held], passed[held] = p >= bands.high, p < bands.low
    fpr, fnr = {}, {}
    for name in sorted(set(src.tolist())):
        reals, fakes = (src == name) & (y == 0), (src == name) & (y == 1)
        if reals.any():
            fpr[name] = float(called[reals].mean())
        if fakes.any():
            fnr[name] = float(passed[fakes].mean())
    return HeldoutBands(fpr, fnr)


def round_to_storage(model: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    """Round the model's floating-point weights to ``dtype`` and back, in place, so that what is
    calibrated and measured is exactly what a checkpoint stored in ``dtype`` will serve."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.copy_(t.to(dtype).to(t.dtype))
    return model


def _margins(clf: Classifier, inputs: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    chunks = []
    for i in range(0, len(inputs), 64):
        z = clf.logits(inputs[i : i + 64])
        chunks.append((z[:, 1] - z[:, 0]).double().numpy())
    return np.concatenate(chunks)


def calibrate_model(
    model: nn.Module,
    base: ModelConfig,
    inputs: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    bf16: bool,
    groups: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> tuple[ModelConfig, dict[str, float]]:
    """Temperature, logit offset (Platt) and band thresholds fitted on (validation) crops, with
    the network in fp32 (the reference).

    With ``bf16`` (a CPU with native bf16), the same crops are scored again under bf16 autocast
    and the largest change of the calibrated P(fake) is stored as ``bf16_max_dp``: ``auto``
    precision serves these weights in bf16 only when it is within ``BF16_TOLERANCE``.
    With ``groups``, the report also carries ``ece_heldout``: the ECE of the same calibration
    fitted on one half of the groups and measured on the other (both ways), since the ECE on the
    data the calibration was fitted on is optimistic. With ``sources`` too, the same for the
    verdict bands (:func:`crossfit_bands`): ``fpr_at_high_heldout`` (worst source, and per
    source) and ``fnr_at_low_heldout``.
    """
    uncalibrated = base.replace(temperature=1.0, logit_bias=0.0, bf16_max_dp=None)
    m = _margins(Classifier(model, uncalibrated, RuntimeOptions("fp32", True)), inputs)
    temperature, bias = fit_platt(m, labels)

    def calibrated(margins: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(1.0 / (1.0 + np.exp(-(margins / temperature + bias))), np.float64)

    p = calibrated(m)
    gap = None
    if bf16:
        m16 = _margins(Classifier(model, uncalibrated, RuntimeOptions("bf16", True)), inputs)
        gap = float(np.max(np.abs(calibrated(m16) - p))) if len(p) else 0.0
    # With sources, the bands hold on every source: at most 3% of any kind of real face in
    # "likely manipulated", at most 10% of any kind of fake in "no manipulation detected".
    bands = choose_thresholds(p, labels, MAX_FPR, MAX_FNR, sources=sources)
    config = base.replace(
        temperature=temperature,
        logit_bias=bias,
        thresholds=(bands.low, bands.high),
        bf16_max_dp=gap,
    )
    report = {
        "temperature": temperature,
        "logit_bias": bias,
        "low": bands.low,
        "high": bands.high,
        "fpr_at_high": bands.fpr_at_high,
        "fnr_at_low": bands.fnr_at_low,
        "ece": ece(labels, p),
    }
    if gap is not None:
        report["bf16_max_dp"] = gap
    if groups is not None:
        report["ece_heldout"] = crossfit_ece(m, labels, groups)
    if groups is not None and sources is not None:
        held = crossfit_bands(m, labels, groups, sources, MAX_FPR, MAX_FNR)
        report["fpr_at_high_heldout"] = held.fpr_at_high if held else float("nan")
        report["fnr_at_low_heldout"] = held.fnr_at_low if held else float("nan")
        if held is not None:
            for name, rate in held.fpr_by_source.items():
                report[f"fpr_at_high_heldout.{name}"] = rate
    return config, report


def run_calibration(
    weights: Path,
    manifest: Path,
    out: Path,
    split: str = "val",
    family: str | None = None,
    cache_dir: Path | None = None,
    name: str | None = None,
) -> tuple[Path, dict[str, float]]:
    """Calibrate any supported checkpoint on a manifest split (temperature and verdict bands)
    and write it in the project's own format, carrying the fitted config."""
    from detector.checkpoints import load_checkpoint

    loaded = load_checkpoint(weights, family=family)
    cfg = loaded.config
    if cfg.head != "softmax" or cfg.num_classes != 2 or cfg.fake_index != 1:
        raise ValueError("calibration is implemented for two-class softmax heads (fake index 1)")
    samples = read_manifest(manifest, split)
    regions = RegionCache(cache_dir or default_cache_dir(), cfg.crop_scale).regions(samples)
    pairs, skipped = usable(samples, regions)
    if skipped:
        _log.info("calibration: %d images without a face skipped", len(skipped))
    inputs = load_inputs(pairs, cfg.input_size, cfg.interpolation)
    labels = np.array([s.label for s, _ in pairs], dtype=np.int64)
    model = round_to_storage(loaded.module).to(memory_format=torch.channels_last)
    base = cfg.replace(temperature=1.0, name=name or cfg.name)
    groups = [s.group_key for s, _ in pairs]
    sources = [s.source for s, _ in pairs]
    config, report = calibrate_model(
        model, base, inputs, labels, bf16_supported(), groups, sources
    )
    save_checkpoint(model, config, out, dtype=torch.float16)
    return out, report
