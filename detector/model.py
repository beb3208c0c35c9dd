"""The Xception network and the runtime wrapper that turns face crops into P(fake).

The network (:mod:`detector.xception`) has timm's ``legacy_xception`` layout: the exact module
layout and key names of every public FaceForensics++-tradition checkpoint
(``../shared/docs/checkpoints.md`` §1). ``Classifier`` adds
what a weight set's :class:`~detector.config.ModelConfig` says about input and output:
normalisation, the head (softmax index or sigmoid), temperature, and the CPU fast path
(bf16 autocast + channels_last), on the CPU by default or on a CUDA device (``device``) for
the Ray Serve deployment on a GPU.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from detector.config import ModelConfig
from detector.memory import release_free_memory
from detector.xception import Xception

_log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
# The largest |P(fake) bf16 - P(fake) fp32| that ``auto`` accepts for a weight set: bf16 must
# not move a verdict's percentage by more than a point.
BF16_TOLERANCE = 0.01
ALLOWED_CLASS_COUNTS = (1, 2, 1000)


def build_xception(num_classes: int = 2, drop_rate: float = 0.0) -> nn.Module:
    """An untrained canonical Xception with ``num_classes`` outputs."""
    if num_classes not in ALLOWED_CLASS_COUNTS:
        raise ValueError(f"unsupported number of classes: {num_classes}")
    return Xception(num_classes, drop_rate)


def bf16_supported() -> bool:
    """Whether this CPU has native bf16 arithmetic (otherwise bf16 is emulated and slow)."""
    try:
        return bool(torch.backends.mkldnn.is_available()) and bool(  # type: ignore[no-untyped-call]
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return False


def _device_type(device: str) -> str:
    """``"cuda"`` for ``cuda``/``cuda:N``, else ``"cpu"`` (the autocast device type)."""
    return "cuda" if device.split(":")[0] == "cuda" else "cpu"


def _native_bf16(device: str) -> bool:
    if _device_type(device) == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bf16_supported()


@dataclass(frozen=True)
class RuntimeOptions:
    """How the network is run. ``bf16`` uses autocast; weights stay fp32. ``auto`` is bf16 on
    CPUs with native bf16 for weights whose measured bf16 gap (``ModelConfig.bf16_max_dp``) is
    within :data:`BF16_TOLERANCE`, else fp32. ``device``: ``cpu`` or a CUDA device (``cuda``,
    ``cuda:N``); inputs are moved there and the scores come back to the CPU."""

    precision: Precision = "auto"
    channels_last: bool = True
    device: str = "cpu"

    def resolved(self, config: ModelConfig) -> RuntimeOptions:
        """The concrete precision (never ``auto``) for these weights on this device."""
        precision = self.precision
        what = "CPU" if _device_type(self.device) == "cpu" else "GPU"
        if precision == "auto":
            gap = config.bf16_max_dp
            if not _native_bf16(self.device):
                precision, why = "fp32", f"this {what} lacks native bf16"
            elif gap is None:
                precision, why = "fp32", "the weights carry no measured bf16 gap"
            elif gap > BF16_TOLERANCE:
                precision, why = "fp32", f"bf16 moves P(fake) by up to {gap:.4f} with them"
            else:
                precision, why = "bf16", f"bf16 moves P(fake) by at most {gap:.4f} with them"
            _log.info("precision auto → %s for %s: %s", precision, config.name, why)
        elif precision == "bf16" and not _native_bf16(self.device):
            _log.warning("bf16 requested but this %s lacks native bf16; using fp32", what)
            precision = "fp32"
        return RuntimeOptions(precision, self.channels_last, self.device)


def logits_to_p_fake(logits: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """P(fake) from raw logits, with the config's head semantics, temperature and offset.

    For two classes, softmax(z / T)[fake] = sigmoid((z_fake - z_real) / T): the calibrated
    probability is sigmoid(margin / T + logit_bias) (Platt scaling)."""
    logits = logits.float()
    if config.head == "sigmoid":
        return torch.sigmoid(logits[:, 0] / config.temperature + config.logit_bias)
    if config.num_classes == 2:
        margin = logits[:, config.fake_index] - logits[:, 1 - config.fake_index]
        return torch.sigmoid(margin / config.temperature + config.logit_bias)
    return torch.softmax(logits / config.temperature, dim=1)[:, config.fake_index]


class Classifier:
    """A loaded detector network with its config. Thread-safe for concurrent ``predict`` calls.

    Input: uint8 face crops ``[N, H, W, 3]`` (RGB) already resized to ``config.input_size``.
    """

    def __init__(
        self,
        module: nn.Module,
        config: ModelConfig,
        options: RuntimeOptions | None = None,
        *,
        sha256: str | None = None,
    ) -> None:
        if config.num_classes == 1000:
            raise ValueError("an ImageNet classifier is not a deepfake detector")
        self.config = config
        self.options = (options or RuntimeOptions()).resolved(config)
        self.sha256 = sha256
        module.eval()
        device = torch.device(self.options.device)
        module = module.to(device)
        if self.options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        # What loading left behind (the file's tensors, the modules' random initial weights)
        # and the old layout's copies are garbage now, but glibc keeps their pages: hand them
        # back once, here, where every served model passes (v3: RSS after loading 912 -> 777 MB
        # in bench; scripts/rss_load.py shows the part loading alone leaves).
        release_free_memory()
        self.module = module
        self._device = device
        self._mean = torch.tensor(config.mean, dtype=torch.float32, device=device)
        self._mean = self._mean.view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(config.std, dtype=torch.float32, device=device)
        self._std = self._std.view(1, 3, 1, 1) * 255.0
        # Autocast state is thread-local, but BN/conv weights are shared: inference is
        # read-only, so concurrent calls are safe. The lock only guards lazy warm-up.
        self._lock = threading.Lock()

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def to_input(self, crops: npt.NDArray[np.uint8]) -> torch.Tensor:
        """uint8 NHWC crops → normalised float NCHW tensor in the runtime memory format."""
        if crops.ndim != 4 or crops.shape[3] != 3:
            raise ValueError(f"expected [N, H, W, 3] uint8 crops, got {crops.shape}")
        size = self.config.input_size
        if crops.shape[1] != size or crops.shape[2] != size:
            raise ValueError(f"crops must be {size}x{size}, got {crops.shape[1:3]}")
        x = torch.from_numpy(np.require(crops, np.uint8, ['C', 'W'])).to(self._device)
        x = x.permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        if self.options.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    def logits(self, crops: npt.NDArray[np.uint8]) -> torch.Tensor:
        x = self.to_input(crops)
        with torch.inference_mode(), torch.autocast(
            _device_type(self.options.device),
            dtype=torch.bfloat16,
            enabled=self.options.precision == "bf16",
        ):
            out: torch.Tensor = self.module(x)
        return out.float()

    def predict(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """P(fake) for each crop, calibrated with the config's temperature."""
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float64)
        p = logits_to_p_fake(self.logits(crops), self.config)
        return p.double().cpu().numpy()
