"""Training crops as the network sees them: :class:`TrainSet` decodes, re-compresses,
jitters, sharpens or softens and self-blends each drawn face; :class:`Normalize` turns uint8
NHWC batches into the network's normalised input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from detector.faces import Box
from detector.images import ImageLimits, decode_image
from detector.training import augment
from detector.training.augment import AugmentOptions
from detector.training.manifest import FAKE, REAL, Sample
from detector.training.sampling import Item
from detector.training.sbi import Points, landmark_self_blend, to_crop


class TrainSet(Dataset[tuple[torch.Tensor, int, int]]):
    """Augmented training crops. Randomness comes from the worker's torch seed, which the
    DataLoader sets differently for every worker and every epoch."""

    def __init__(
        self,
        pairs: Sequence[tuple[Sample, Box]],
        size: int,
        sbi: float,
        opts: AugmentOptions | None = None,
        limits: ImageLimits | None = None,
        landmarks: Sequence[Points | None] | None = None,
    ) -> None:
        self.pairs = list(pairs)
        self.size = size
        self.sbi = sbi
        self.opts = opts or AugmentOptions()
        self.landmarks = list(landmarks) if landmarks is not None else [None] * len(self.pairs)
        self.limits = limits or ImageLimits()
        self._rng: np.random.Generator | None = None
        self._seed: int | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def _generator(self) -> np.random.Generator:
        seed = torch.initial_seed() % 2**63
        if self._rng is None or seed != self._seed:
            self._rng, self._seed = np.random.default_rng(seed), seed
        return self._rng

    def __getitem__(self, item: Item) -> tuple[torch.Tensor, int, int]:
        """``item``: an index, or (index, seed): partners drawn together share the seed, so they
        get the same JPEG quality, crop jitter and photometric changes (SBI stays independent).
        Returns (crop, label, seed or -1); the seed lets the loop find the partners in a batch."""
        rng = self._generator()
        if isinstance(item, int):
            index, tag, aug = item, -1, rng
        else:
            index, tag = item
            aug = np.random.default_rng(tag)
        sample, box = self.pairs[index]
        rgb = decode_image(sample.path.read_bytes(), self.limits).rgb
        rgb = augment.jpeg(rgb, int(aug.integers(*self.opts.jpeg_quality, endpoint=True)))
        h, w = rgb.shape[:2]
        crop = augment.jitter_box(box, w, h, self.opts.crop_jitter, aug)
        region = np.ascontiguousarray(rgb[crop.y1 : crop.y2, crop.x1 : crop.x2])
        label = sample.label
        if aug.random() < self.opts.p_sharpen[label]:
            face = augment.sharpen_large(region, self.size, aug)
        else:
            face = augment.resize(region, self.size)
            if aug.random() < self.opts.p_soften[label]:
                face = augment.soften(face, aug)
        if label == REAL and rng.random() < self.sbi:
            points = self.landmarks[index]
            if points is not None:
                face = landmark_self_blend(face, to_crop(points, crop, self.size), rng)
            else:
                face = augment.self_blend(face, rng)
            label = FAKE
        face = augment.photometric(face, self.opts, aug)
        return torch.from_numpy(np.array(face, dtype=np.uint8)), label, tag


class Normalize(nn.Module):
    """uint8 NHWC → normalised float NCHW (mean = std = 0.5, as FF++)."""

    def __init__(self, channels_last: bool) -> None:
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)
