"""``RemoteClassifier``: a :class:`~detector.scorer.Scorer` whose network runs on an Open
Inference Protocol V2 server. The pipeline keeps decoding, face finding and cropping; only the
crops travel. Its config is the served weights' own (from the model metadata), so crops are cut
and bands drawn exactly as with the same weights loaded here."""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from detector.config import ModelConfig
from detector.remote.client import RemoteOptions, V2Client
from detector.remote.wire import faces_per_request, model_config, to_wire

_log = logging.getLogger(__name__)

# Crops per infer request unless the server advertises less room: the service's batches are
# rarely larger, and a bounded request keeps one slow answer from holding many faces.
MAX_FACES_PER_REQUEST = 64


class RemoteClassifier:
    """Scores crops on ``client``'s model. Build it with :meth:`connect`."""

    def __init__(
        self,
        client: V2Client,
        config: ModelConfig,
        version: str | None = None,
        max_faces: int = MAX_FACES_PER_REQUEST,
    ) -> None:
        self.client = client
        self._config = config
        self.version = version  # the server's version of the model (a weights hash prefix)
        self.max_faces = max_faces  # crops per infer request; more are split over several

    @classmethod
    def connect(
        cls, url: str, model: str = "deepfake-xception", options: RemoteOptions | None = None
    ) -> RemoteClassifier:
        """Wait for the server and the model to be ready (``options.start_timeout_s``), read
        the model's metadata and check it. Raises ``DetectorUnavailable`` (never ready) or
        ``RemoteModelRefused`` (unknown model, no config, mismatched input)."""
        client = V2Client(url, model, options)
        try:
            client.wait_ready()
            metadata = client.metadata()
            config = model_config(metadata, model)
        except BaseException:
            client.close()
            raise
        versions = metadata.get("versions")
        version = str(versions[0]) if isinstance(versions, list) and versions else None
        _log.info("remote detector %s at %s: %s, input %d px, version %s",
                  model, client.base_url, config.name, config.input_size, version)  # fmt: skip
        per_request = faces_per_request(
            metadata, config.input_size, binary=client.options.binary, cap=MAX_FACES_PER_REQUEST
        )
        return cls(client, config, version, per_request)

    @property
    def config(self) -> ModelConfig:
        return self._config

    @property
    def input_size(self) -> int:
        return self._config.input_size

    def predict(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """Calibrated P(fake) per crop ``[K, S, S, 3]``, computed by the server."""
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float64)
        size = self._config.input_size
        if crops.shape[1:] != (size, size, 3):
            raise ValueError(f"crops must be [K, {size}, {size}, 3], got {crops.shape}")
        wire = to_wire(crops)
        if len(wire) <= self.max_faces:
            return self.client.infer(wire)
        step = self.max_faces
        parts = [self.client.infer(wire[i : i + step]) for i in range(0, len(wire), step)]
        return np.concatenate(parts)

    def close(self) -> None:
        self.client.close()
