"""The one place that builds the engine from plain values: a classifier from a weights file
(``build_classifier``) or on a V2 server (``build_remote_classifier``) and the whole pipeline
with the served face finder (``build_pipeline``).
The ``check`` command, the benchmarks, evaluation and the bots' composition root all call these,
so a setting means the same thing everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from detector.checkpoints import load_classifier, resolve_weights
from detector.finders import make_finder
from detector.images import ImageLimits
from detector.model import Classifier, Precision, RuntimeOptions
from detector.pipeline import Pipeline
from detector.remote import RemoteClassifier, RemoteOptions
from detector.scorer import Scorer

_PRECISIONS: dict[str, Precision] = {"auto": "auto", "fp32": "fp32", "bf16": "bf16"}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> None:
    """Torch's intra-op threads: ``threads``, or every core this process may use."""
    torch.set_num_threads(threads or available_cores())


def runtime_options(precision: str, device: str = "cpu") -> RuntimeOptions:
    """``auto`` stays ``auto`` here: the classifier resolves it with the loaded weights' config."""
    try:
        return RuntimeOptions(_PRECISIONS[precision], channels_last=True, device=device)
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}: auto, fp32 or bf16") from None


def build_classifier(
    weights: Path | None,
    *,
    family: str | None = None,
    sha256: str | None = None,
    precision: str = "auto",
    threads: int | None = None,
    device: str = "cpu",
) -> Classifier:
    """The classifier for ``weights`` (None: the shipped file or ``$DEEPFAKE_BOT_WEIGHTS``) on
    ``device`` (``cpu``, ``cuda``, ``cuda:N``). Raises ``CheckpointError`` subclasses."""
    set_threads(threads)
    return load_classifier(
        resolve_weights(weights),
        family=family,
        expected_sha256=sha256,
        options=runtime_options(precision, device),
    )


def build_remote_classifier(
    url: str, model: str = "deepfake-xception", options: RemoteOptions | None = None
) -> RemoteClassifier:
    """The network on the Open Inference Protocol V2 server at ``url`` (docs/remote-detector.md),
    once it and ``model`` are ready. Raises ``DetectorUnavailable`` or ``RemoteModelRefused``."""
    return RemoteClassifier.connect(url, model, options)


def scorer_labels(scorer: Scorer) -> dict[str, str]:
    """What the metrics say about the network: its name, input size, precision and weights."""
    labels = {"name": scorer.config.name, "input_size": str(scorer.config.input_size)}
    if isinstance(scorer, Classifier):
        return {**labels, "precision": scorer.options.precision,
                "weights_sha256": scorer.sha256 or ""}  # fmt: skip
    if isinstance(scorer, RemoteClassifier):
        return {**labels, "precision": "remote", "weights_sha256": scorer.version or ""}
    return {**labels, "precision": "", "weights_sha256": ""}


def close_scorer(scorer: Scorer) -> None:
    """Release what the network holds beyond memory (a remote one's connections)."""
    if isinstance(scorer, RemoteClassifier):
        scorer.close()


def build_pipeline(
    classifier: Scorer,
    *,
    max_faces: int = 8,
    limits: ImageLimits | None = None,
    finder: str | None = None,
) -> Pipeline:
    """Decode → served face finder (or ``finder`` by name) → ``classifier``. Raises
    ``FinderUnavailable`` when the finder cannot be built."""
    return Pipeline(classifier, make_finder(finder, max_faces=max_faces), limits or ImageLimits())
