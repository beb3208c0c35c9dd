"""``Scorer``: what the pipeline needs of a network, whether it runs here
(:class:`~detector.model.Classifier`) or on a server (:class:`~detector.remote.RemoteClassifier`).
Light on purpose (numpy and the config only), so typing against it loads no torch."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from detector.config import ModelConfig


class Scorer(Protocol):
    """Calibrated P(fake) for model-sized face crops, and the config that says how to cut them
    and read the scores (input size, normalisation, thresholds)."""

    @property
    def config(self) -> ModelConfig: ...

    def predict(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """uint8 RGB crops ``[K, S, S, 3]`` (S = ``config.input_size``) → P(fake) ``[K]``."""
        ...
