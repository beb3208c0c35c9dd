"""Ensemble files: several networks' logits averaged, stored and loaded as strictly as one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bot.main import main
from detector.checkpoints import load_checkpoint, save_checkpoint
from detector.config import ModelConfig
from detector.ensemble import LogitEnsemble
from detector.errors import UnsupportedCheckpoint
from detector.model import Classifier, RuntimeOptions, build_xception
from detector.training.ensemble_build import build_ensemble

from .conftest import TINY_CONFIG


def _member(tmp: Path, seed: int, config: ModelConfig = TINY_CONFIG) -> Path:
    torch.manual_seed(seed)
    path = tmp / f"member{seed}.safetensors"
    # fp16 like shipped weights, so the ensemble file holds bit-identical tensors
    save_checkpoint(build_xception(2).eval(), config, path, dtype=torch.float16)
    return path


def _crops(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)


def test_ensemble_scores_the_mean_logit_of_its_members(tmp_path: Path) -> None:
    a, b, c = (_member(tmp_path, s) for s in (1, 2, 3))
    out = tmp_path / "ens.safetensors"
    assert main(["ensemble", str(a), str(b), str(c), "--out", str(out), "--name", "trio"]) == 0
    loaded = load_checkpoint(out)
    assert isinstance(loaded.module, LogitEnsemble) and len(loaded.module.members) == 3
    assert loaded.config.members == 3 and loaded.config.name == "trio"
    assert loaded.config.input_size == TINY_CONFIG.input_size
    assert loaded.config.extra == {}  # extra holds measured figures; none yet
    for path in (a, b, c):  # the description names every member by its sha256
        assert load_checkpoint(path).sha256[:12] in loaded.config.description

    fp32 = RuntimeOptions(precision="fp32")
    members = [Classifier(load_checkpoint(p).module, ModelConfig(input_size=64), fp32)
               for p in (a, b, c)]
    ens = Classifier(loaded.module, ModelConfig(input_size=64, members=3), fp32)
    x = _crops()
    with torch.inference_mode():
        expected = torch.stack([m.module(m.to_input(x)) for m in members]).mean(0)
        got = ens.module(ens.to_input(x))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the members disagree, so the mean is not any one of them
    assert not torch.allclose(got, members[0].module(members[0].to_input(x)), atol=1e-4)


def _rewrite(src: Path, dst: Path, edit: dict[str, torch.Tensor | None]) -> None:
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    for key, value in edit.items():
        if value is None:
            tensors.pop(key)
        else:
            tensors[key] = value
    save_file(tensors, str(dst), metadata=meta)


def test_ensemble_files_load_strictly(tmp_path: Path) -> None:
    out = tmp_path / "ens.safetensors"
    build_ensemble([_member(tmp_path, 1), _member(tmp_path, 2)], out)
    with safe_open(str(out), "pt") as f:
        keys = list(f.keys())
        head = f.get_tensor("member1.fc.weight")
    assert all(k.startswith(("member0.", "member1.")) for k in keys)

    cases = {
        "missing.safetensors": {"member1.fc.weight": None},  # a member lacks a tensor
        "stray.safetensors": {"member2.fc.weight": head},  # a third member the config denies
        "bare.safetensors": {"fc.weight": head},  # a key outside every member
        "padded.safetensors": {"member01.fc.weight": head},
    }
    for name, edit in cases.items():
        _rewrite(out, tmp_path / name, edit)
        with pytest.raises(UnsupportedCheckpoint, match=name):
            load_checkpoint(tmp_path / name)

    # a member's own family config cannot be forced onto the two-network file
    with pytest.raises(UnsupportedCheckpoint, match="2"):
        load_checkpoint(out, family="ffpp")


def test_ensemble_refuses_members_it_cannot_serve_as_one(tmp_path: Path) -> None:
    a, b = _member(tmp_path, 1), _member(tmp_path, 2)
    other = tmp_path / "other-size"
    other.mkdir()
    wide = _member(other, 3, TINY_CONFIG.replace(input_size=96))
    with pytest.raises(ValueError, match="input_size"):
        build_ensemble([a, wide], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="twice"):
        build_ensemble([a, a], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="2 to 8"):
        build_ensemble([a], tmp_path / "x.safetensors")
    ens = tmp_path / "ens.safetensors"
    build_ensemble([a, b], ens)
    with pytest.raises(ValueError, match="already an ensemble"):
        build_ensemble([ens, a], tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
    # the CLI says so in one line, exit 2
    assert main(["ensemble", str(a), str(wide), "--out", str(tmp_path / "y.safetensors")]) == 2


def test_config_bounds_the_member_count() -> None:
    for bad in (0, 9):
        with pytest.raises(ValueError, match="members"):
            ModelConfig(members=bad)
    with pytest.raises(ValueError, match="2 network"):
        save_checkpoint(build_xception(2), ModelConfig(members=2), "/nonexistent/x.safetensors")


def test_an_ensemble_is_calibrated_checked_and_refused_as_a_fine_tuning_start(
    tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from detector.training.options import TrainOptions
    from detector.training.trainer import Trainer, run_training

    cache = tmp_path / "cache"
    runs = []
    for seed in (0, 1):
        opts = TrainOptions(manifest=tiny_set, out=tmp_path / f"run{seed}", input_size=64,
                            batch_size=4, epochs=2, samples_per_epoch=16, warmup_steps=2,
                            workers=0, save_every=100, cache_dir=cache, progress=False,
                            seed=seed)
        run_training(opts)
        runs.append(opts.out / "best.safetensors")
    ens, calibrated = tmp_path / "ens.safetensors", tmp_path / "ens-cal.safetensors"
    build_ensemble(runs, ens)
    assert main(["calibrate", str(tiny_set), "--weights", str(ens), "--out", str(calibrated),
                 "--cache-dir", str(cache), "--name", "calibrated pair"]) == 0
    loaded = load_checkpoint(calibrated)
    assert loaded.config.members == 2 and isinstance(loaded.module, LogitEnsemble)
    assert loaded.config.temperature != 1.0 and loaded.config.bf16_max_dp is not None

    capsys.readouterr()
    picture = tiny_set.parent / "real0.jpg"
    assert main(["check", str(picture), "--weights", str(calibrated), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["error"] is None and len(line["faces"]) == 1
    assert line["verdict"] == loaded.config.band(line["p_fake"]).value

    trainer = Trainer(TrainOptions(manifest=tiny_set, out=tmp_path / "ft", input_size=64,
                                   init=calibrated, cache_dir=cache, progress=False))
    with pytest.raises(ValueError, match="ensemble"):
        trainer.build()

    # ... but a member taken out of it is a single network that fine-tunes
    member = tmp_path / "member1.safetensors"
    assert main(["ensemble-member", str(calibrated), "1", "--out", str(member)]) == 0
    single = load_checkpoint(member)
    assert single.config.members == 1 and not isinstance(single.module, LogitEnsemble)
    assert single.config.temperature == 1.0  # the ensemble's calibration is not the member's
    stored = loaded.module.members[1].state_dict()
    for key, value in single.module.state_dict().items():
        torch.testing.assert_close(value, stored[key], rtol=0, atol=0)
    Trainer(TrainOptions(manifest=tiny_set, out=tmp_path / "ft1", input_size=64, init=member,
                         cache_dir=cache, progress=False)).build()


def test_ensemble_member_refuses_what_it_cannot_take_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _member(tmp_path, 1), _member(tmp_path, 2)
    ens = tmp_path / "ens.safetensors"
    build_ensemble([a, b], ens)
    out = tmp_path / "out.safetensors"
    assert main(["ensemble-member", str(ens), "2", "--out", str(out)]) != 0
    assert "members 0 to 1" in capsys.readouterr().err
    assert main(["ensemble-member", str(a), "0", "--out", str(out)]) != 0
    assert "single network" in capsys.readouterr().err
    assert not out.exists()
    # the members come out with exactly the tensors they went in with
    assert main(["ensemble-member", str(ens), "0", "--out", str(out)]) == 0
    got, want = load_checkpoint(out).module.state_dict(), load_checkpoint(a).module.state_dict()
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)
