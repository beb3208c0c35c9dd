"""Checkpoint loading: every supported family, built here in its real layout and container, loads
into the canonical Xception with bit-identical logits; everything else is refused with a clear
error, and no payload in a malicious file ever runs (``../shared/docs/checkpoints.md``)."""

from __future__ import annotations

import argparse
import builtins
import json
import os
import pickle
import re
import shlex
import shutil
import tarfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from detector.checkpoints import (
    OWN_FORMAT,
    WEIGHTS_ENV,
    LoadedCheckpoint,
    canonical_shapes,
    canonicalize_state_dict,
    default_weights_path,
    load_checkpoint,
    load_classifier,
    resolve_weights,
    save_checkpoint,
    unwrap_state_dict,
)
from detector.config import FAMILY_CONFIGS, IMAGENET_MEAN, ModelConfig
from detector.errors import (
    ChecksumMismatch,
    NotADetector,
    UnsafeCheckpoint,
    UnsupportedCheckpoint,
    WeightsNotInstalled,
)
from detector.model import RuntimeOptions

from . import checkpoint_factory as cf
from .conftest import REPO

StateDict = dict[str, torch.Tensor]
LEGACY_SIGNATURE = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")
FP32 = RuntimeOptions("fp32", channels_last=False)


# --- session-wide weights and files -------------------------------------------------------------


@pytest.fixture(scope="session")
def x() -> torch.Tensor:
    """Fixed input; pooling is global, so 64x64 runs the same network as 299x299."""
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(42))


@pytest.fixture(scope="session")
def canonical() -> StateDict:
    return cf.random_canonical_state_dict(2, seed=0)


@pytest.fixture(scope="session")
def canonical1(canonical: StateDict) -> StateDict:
    """Single-logit variant (ISPL): same body, one head row."""
    gen = torch.Generator().manual_seed(5)
    return canonical | {
        "fc.weight": torch.randn(1, 2048, generator=gen) / 45.0,
        "fc.bias": torch.randn(1, generator=gen) * 0.1,
    }


@pytest.fixture(scope="session")
def canonical1000(canonical: StateDict) -> StateDict:
    gen = torch.Generator().manual_seed(6)
    return canonical | {
        "fc.weight": torch.randn(1000, 2048, generator=gen) / 45.0,
        "fc.bias": torch.zeros(1000),
    }


@pytest.fixture(scope="session")
def ref_logits(canonical: StateDict, x: torch.Tensor) -> torch.Tensor:
    return cf.logits(cf.reference_module(canonical), x)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def ffpp(
    store: Path, canonical: StateDict, x: torch.Tensor
) -> dict[str, tuple[Path, torch.Tensor]]:
    """FF++/HongguLiu files, each with the logits of the FF++ module that produced it."""
    out: dict[str, tuple[Path, torch.Tensor]] = {}
    with cf.ffpp_code() as network_models:
        plain = cf.transfer_model(network_models, canonical, dropout=0.0)
        dropout = cf.add_torch1_backend(cf.transfer_model(network_models, canonical, dropout=0.5))
        out["plain"] = (cf.write_legacy(plain, store / "all_c23.p"), cf.logits(plain, x))
        out["dropout"] = (cf.write_legacy(dropout, store / "ffpp_dropout.p"), cf.logits(dropout, x))
        torch.save(plain, store / "ffpp_resaved.pth")
        out["zip"] = (store / "ffpp_resaved.pth", cf.logits(plain, x))
        hongguliu = cf.hongguliu_legacy_file(network_models, canonical, store / "hongguliu_c0.pkl")
        out["hongguliu"] = (hongguliu, cf.logits(dropout, x))
    assert cf.foreign_modules_loaded() == []
    return out


def _link(src: Path, dst: Path) -> Path:
    """The same bytes under another name (a hard link where possible: no 83 MB copy)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


def _load_logits(loaded: LoadedCheckpoint, x: torch.Tensor) -> torch.Tensor:
    assert not loaded.module.training
    return cf.logits(loaded.module, x)


# --- 1-4: FaceForensics++ and HongguLiu ---------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "dropout"])
def test_ffpp_legacy_whole_module_loads_bit_exact(
    ffpp: dict[str, tuple[Path, torch.Tensor]],
    ref_logits: torch.Tensor,
    x: torch.Tensor,
    variant: str,
) -> None:
    path, ffpp_logits = ffpp[variant]
    data = path.read_bytes()
    assert data.startswith(LEGACY_SIGNATURE)
    assert data.count(b"cuda:0") == 276  # one fresh location string per storage
    assert b"network.models\nTransferModel" in data
    assert b"pretrainedmodels.models.xception\nXception" in data
    if variant == "dropout":
        assert b"_get_thnn_function_backend" in data  # torch 1.x `_backend` records
    # torch's own weights-only loader cannot read these files (checkpoints.md §4.2) ...
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)
    # ... the restricted reader can, to the FF++ module's exact logits.
    loaded = load_checkpoint(path)
    assert (loaded.family, loaded.container) == ("ffpp", "torch-legacy")
    assert loaded.config == FAMILY_CONFIGS["ffpp"]
    assert torch.equal(ffpp_logits, ref_logits)
    assert torch.equal(_load_logits(loaded, x), ref_logits)


def test_ffpp_whole_module_resaved_as_zip(
    ffpp: dict[str, tuple[Path, torch.Tensor]], ref_logits: torch.Tensor, x: torch.Tensor
) -> None:
    path, ffpp_logits = ffpp["zip"]
    assert path.read_bytes()[:4] == b"PK\x03\x04"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)
    loaded = load_checkpoint(path)
    assert (loaded.family, loaded.container) == ("ffpp", "torch-zip")
    assert torch.equal(ffpp_logits, ref_logits)
    assert torch.equal(_load_logits(loaded, x), ref_logits)


def test_ffpp_full_frame_model_is_recognised_by_name(
    ffpp: dict[str, tuple[Path, torch.Tensor]], tmp_path: Path
) -> None:
    loaded = load_checkpoint(_link(ffpp["plain"][0], tmp_path / "full_c40.p"))
    assert loaded.family == "ffpp-full"
    assert loaded.config.crop_mode == "full"


def test_loader_never_imports_the_classes_a_pickle_names(
    ffpp: dict[str, tuple[Path, torch.Tensor]],
) -> None:
    # Even with the FF++ code importable, loading must not touch it.
    with cf.ffpp_importable():
        for variant in ("plain", "dropout", "zip"):
            load_checkpoint(ffpp[variant][0])
        assert cf.foreign_modules_loaded() == []


def test_hongguliu_legacy_state_dict(
    ffpp: dict[str, tuple[Path, torch.Tensor]], ref_logits: torch.Tensor, x: torch.Tensor
) -> None:
    path, ffpp_logits = ffpp["hongguliu"]
    # The writer reproduces the size fingerprint of the real deepfake_c0_xception.pkl
    # (checkpoints.md §2.2): legacy format, OrderedDict, model.* keys, cuda:0 tags.
    assert path.stat().st_size == 83_519_096
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(raw, OrderedDict) and len(raw) == 276
    assert "model.last_linear.1.weight" in raw and all(k.startswith("model.") for k in raw)
    loaded = load_checkpoint(path)
    assert (loaded.family, loaded.container) == ("hongguliu", "torch-legacy")
    assert torch.equal(ffpp_logits, ref_logits)
    assert torch.equal(_load_logits(loaded, x), ref_logits)


def test_hongguliu_release_name_is_fingerprinted(
    ffpp: dict[str, tuple[Path, torch.Tensor]], tmp_path: Path
) -> None:
    # Same size as the release, different bytes: the registry's sha256 fingerprint catches it.
    fake = _link(ffpp["hongguliu"][0], tmp_path / "deepfake_c0_xception.pkl")
    with pytest.raises(ChecksumMismatch, match=r"deepfake_c0_xception\.pkl: .*9dffd1ad"):
        load_checkpoint(fake)


# --- 5-6: DeepfakeBench and ISPL ----------------------------------------------------------------


@pytest.mark.parametrize("ddp", [False, True], ids=["plain", "module-prefix"])
def test_deepfakebench_zip_state_dict(
    store: Path, canonical: StateDict, ref_logits: torch.Tensor, x: torch.Tensor, ddp: bool
) -> None:
    sd = cf.deepfakebench_state_dict(canonical, ddp=ddp)
    assert len(sd) == 283
    path = store / ("xception_best.pth" if not ddp else "dfb_ddp.pth")
    torch.save(OrderedDict(sd), path)
    loaded = load_checkpoint(path)
    assert (loaded.family, loaded.container) == ("deepfakebench", "torch-zip")
    assert loaded.config.input_size == 256
    assert torch.equal(_load_logits(loaded, x), ref_logits)


@pytest.fixture(scope="session")
def ispl_file(store: Path, canonical1: StateDict) -> Path:
    path = store / "ispl.pth"
    torch.save(cf.ispl_state_dict(canonical1), path)
    return path


def test_ispl_single_logit_is_sigmoid(ispl_file: Path, canonical1: StateDict) -> None:
    reference = cf.reference_module(canonical1)
    clf = load_classifier(ispl_file, options=FP32)
    assert clf.config.family == "ispl" and clf.config.head == "sigmoid"
    assert clf.config.mean == IMAGENET_MEAN and clf.input_size == 224
    crops = np.random.default_rng(3).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    expected = torch.sigmoid(cf.logits(reference, clf.to_input(crops))[:, 0]).double().numpy()
    np.testing.assert_allclose(clf.predict(crops), expected, rtol=0, atol=1e-7)
    assert torch.equal(
        cf.logits(clf.module, clf.to_input(crops)), cf.logits(reference, clf.to_input(crops))
    )


def test_ispl_release_name_carries_a_sha256_prefix(ispl_file: Path, tmp_path: Path) -> None:
    digest = load_checkpoint(ispl_file).sha256
    good = _link(ispl_file, tmp_path / f"Xception_FFPP_bestval-{digest[:16]}.pth")
    assert load_checkpoint(good).family == "ispl"
    bad = _link(ispl_file, tmp_path / "Xception_DFDC_bestval-e826cd0000.pth")
    with pytest.raises(ChecksumMismatch, match="does not start with e826cd0000"):
        load_checkpoint(bad)


def test_training_snapshot_wrapper_is_unwrapped(
    tmp_path: Path, canonical1: StateDict, x: torch.Tensor
) -> None:
    path = tmp_path / "snapshot.pth"
    torch.save({"net": cf.ispl_state_dict(canonical1), "epoch": 7, "bce_best": 0.25}, path)
    loaded = load_checkpoint(path)
    assert loaded.family == "ispl"
    assert torch.equal(_load_logits(loaded, x), cf.logits(cf.reference_module(canonical1), x))


# --- 7: ImageNet classifiers --------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["timm", "cadene-2d"])
def test_imagenet_xception_is_not_a_detector(
    tmp_path: Path, canonical1000: StateDict, variant: str
) -> None:
    sd = canonical1000 if variant == "timm" else cf.cadene_2d_state_dict(canonical1000)
    path = tmp_path / "imagenet.pth"
    torch.save(sd, path)
    with pytest.raises(
        NotADetector, match=r"imagenet\.pth: .*ImageNet classifier \(1000 classes\)"
    ):
        load_checkpoint(path)
    # The timm release name pins a sha256 prefix, which random weights do not have.
    with pytest.raises(ChecksumMismatch, match="43020ad28"):
        load_checkpoint(_link(path, tmp_path / "xception-43020ad28.pth"))


def test_cadene_2d_pointwise_and_missing_counters_are_mapped(canonical1000: StateDict) -> None:
    weights = canonicalize_state_dict(cf.cadene_2d_state_dict(canonical1000))
    assert weights.pointwise_2d and weights.filled_num_batches_tracked
    assert weights.num_classes == 1000
    assert torch.equal(
        weights.state_dict["conv4.pointwise.weight"], canonical1000["conv4.pointwise.weight"]
    )
    assert int(weights.state_dict["bn1.num_batches_tracked"]) == 0


# --- 8: the project's own format ----------------------------------------------------------------


OWN_CONFIG = ModelConfig(
    name="unit-test xception",
    input_size=64,
    temperature=1.25,
    thresholds=(0.2, 0.8),
    description="round trip",
    extra={"trained_on": "random"},
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_own_format_round_trip(
    tmp_path: Path,
    canonical: StateDict,
    ref_logits: torch.Tensor,
    x: torch.Tensor,
    dtype: torch.dtype,
) -> None:
    path = tmp_path / "own.safetensors"
    digest = save_checkpoint(cf.reference_module(canonical), OWN_CONFIG, path, dtype=dtype)
    loaded = load_checkpoint(path, expected_sha256=digest)
    assert (loaded.family, loaded.container, loaded.sha256) == (
        "deepfake-bot",
        "safetensors",
        digest,
    )
    assert loaded.config == OWN_CONFIG
    assert all(t.dtype in (torch.float32, torch.int64) for t in loaded.module.state_dict().values())
    out = _load_logits(loaded, x)
    if dtype == torch.float32:
        assert torch.equal(out, ref_logits)
    else:
        assert path.stat().st_size < 45_000_000
        delta = torch.softmax(out, 1)[:, 1] - torch.softmax(ref_logits, 1)[:, 1]
        assert float(delta.abs().max()) <= 0.01


def test_save_accepts_other_layouts_and_checks_the_config(
    tmp_path: Path, canonical: StateDict, ref_logits: torch.Tensor, x: torch.Tensor
) -> None:
    # An FF++/HongguLiu TransferModel (model.* keys, last_linear.1 head) is saved canonically.
    with cf.ffpp_code() as network_models:
        model = cf.transfer_model(network_models, canonical, dropout=0.5)
    path = tmp_path / "converted.safetensors"
    save_checkpoint(model, FAMILY_CONFIGS["hongguliu"], path)
    loaded = load_checkpoint(path)
    assert loaded.family == "hongguliu" and loaded.config == FAMILY_CONFIGS["hongguliu"]
    assert torch.equal(_load_logits(loaded, x), ref_logits)
    with pytest.raises(ValueError, match="1 output"):
        save_checkpoint(model, FAMILY_CONFIGS["ispl"], tmp_path / "bad.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted.safetensors"]


def test_container_is_sniffed_not_taken_from_the_extension(
    tmp_path: Path, ffpp: dict[str, tuple[Path, torch.Tensor]], canonical: StateDict
) -> None:
    own = tmp_path / "weights.pth"
    save_checkpoint(cf.reference_module(canonical), OWN_CONFIG, own)
    assert load_checkpoint(own).container == "safetensors"
    legacy = _link(ffpp["hongguliu"][0], tmp_path / "hongguliu.safetensors")
    assert load_checkpoint(legacy).container == "torch-legacy"


def test_foreign_safetensors_is_a_plain_state_dict(
    tmp_path: Path, canonical: StateDict, canonical1: StateDict
) -> None:
    ispl = tmp_path / "ispl.safetensors"
    save_file(cf.ispl_state_dict(canonical1), str(ispl), metadata={"format": "pt"})
    assert load_checkpoint(ispl).family == "ispl"
    bare = tmp_path / "bare.safetensors"
    save_file(canonical, str(bare))
    with pytest.raises(UnsupportedCheckpoint, match="pass the family explicitly"):
        load_checkpoint(bare)
    loaded = load_checkpoint(bare, family="deepfakebench")
    assert loaded.config == FAMILY_CONFIGS["deepfakebench"]
    assert load_checkpoint(bare, family="deepfake-bot").config == ModelConfig()


# --- 9: refusals --------------------------------------------------------------------------------


def _replace(
    key: str, value: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[StateDict], None]:
    def edit(sd: StateDict) -> None:
        sd[key] = value(sd[key])

    return edit


def _drop(key: str) -> Callable[[StateDict], None]:
    def edit(sd: StateDict) -> None:
        del sd[key]

    return edit


def _nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


REFUSALS: dict[str, tuple[Callable[[StateDict], None], str]] = {
    "wrong shape": (
        _replace("conv2.weight", lambda t: torch.zeros(64, 32, 5, 5)),
        r"conv2\.weight is \[64, 32, 5, 5\], expected \[64, 32, 3, 3\]",
    ),
    "12-channel conv1": (
        _replace("conv1.weight", lambda t: torch.zeros(32, 12, 3, 3)),
        r"12 input channels.*conv1\.weight is \[32, 12, 3, 3\]",
    ),
    "missing key": (
        _drop("block5.rep.4.pointwise.weight"),
        r"missing 1 key\(s\): block5\.rep\.4\.pointwise\.weight",
    ),
    "unknown key": (
        lambda sd: sd.update({"block5.rep.4.gate": torch.zeros(1)}),
        r"unexpected 1 key\(s\): block5\.rep\.4\.gate",
    ),
    "partial num_batches_tracked": (
        _drop("bn3.num_batches_tracked"),
        r"num_batches_tracked is present for 39 of 40 .*bn3\.num_batches_tracked",
    ),
    "NaN": (_replace("bn3.weight", _nan), r"bn3\.weight contains non-finite values"),
    "Inf": (
        _replace("fc.bias", lambda t: torch.full_like(t, float("inf"))),
        "fc.bias contains non-finite",
    ),
    "integer weights": (
        _replace("conv1.weight", lambda t: t.to(torch.int32)),
        "conv1.weight has dtype torch.int32, expected floating point",
    ),
    "two heads": (
        lambda sd: sd.update(
            {"last_linear.weight": sd["fc.weight"], "last_linear.bias": sd["fc.bias"]}
        ),
        "exactly one classifier head",
    ),
    "three classes": (
        lambda sd: sd.update({"fc.weight": torch.zeros(3, 2048), "fc.bias": torch.zeros(3)}),
        "3 outputs",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_mapping_refuses(canonical: StateDict, case: str) -> None:
    edit, message = REFUSALS[case]
    sd = dict(canonical)
    edit(sd)
    with pytest.raises(UnsupportedCheckpoint, match=message):
        canonicalize_state_dict(sd)


def test_mapping_rules_in_memory(canonical: StateDict) -> None:
    hongguliu = cf.with_head(canonical, "last_linear.1", "model.")
    weights = canonicalize_state_dict({"_orig_mod." + k: v for k, v in hongguliu.items()})
    assert (weights.prefix, weights.head, weights.wrappers) == (
        "model.",
        "last_linear.1",
        ("_orig_mod.",),
    )
    assert list(weights.state_dict) == list(canonical_shapes(2))
    half = canonicalize_state_dict(
        {k: v.half() if v.is_floating_point() else v for k, v in canonical.items()}
    )
    assert half.state_dict["conv1.weight"].dtype == torch.float32
    # A prefix is stripped only when every key has it.
    mixed = cf.with_head(canonical, "last_linear", "backbone.") | {
        "FAD_head.weight": torch.zeros(1)
    }
    with pytest.raises(UnsupportedCheckpoint, match=r"most keys start with 'backbone\.'.*FAD_head"):
        canonicalize_state_dict(mixed)


def _same(a: StateDict, b: StateDict) -> bool:
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a)


def test_unwrap_state_dict(canonical: StateDict) -> None:
    for wrapper in ("state_dict", "model_state_dict", "net", "model", "ema", "state_dict_ema"):
        assert _same(unwrap_state_dict({wrapper: canonical, "epoch": 3}), canonical)
    assert _same(unwrap_state_dict({"model": {"state_dict": canonical}}), canonical)
    assert _same(unwrap_state_dict({"state_dict": canonical, "state_dict_ema": {}}), canonical)
    with pytest.raises(
        UnsupportedCheckpoint, match=r"no state dict found: top-level keys are \[weights, epoch\]"
    ):
        unwrap_state_dict({"weights": canonical, "epoch": 3})
    with pytest.raises(UnsupportedCheckpoint, match="mixes tensors with other values: epoch"):
        unwrap_state_dict(canonical | {"epoch": 3})
    with pytest.raises(UnsupportedCheckpoint, match="holds a list"):
        unwrap_state_dict([1, 2])


def test_twelve_channel_detector_file_is_refused(tmp_path: Path, canonical: StateDict) -> None:
    # F3Net-like DeepfakeBench file: 12-channel stem and a Sequential head.
    sd = cf.with_head(canonical, "last_linear.1", "backbone.")
    sd["backbone.conv1.weight"] = torch.zeros(32, 12, 3, 3)
    path = tmp_path / "f3net_best.pth"
    torch.save(sd, path)
    with pytest.raises(UnsupportedCheckpoint, match=r"f3net_best\.pth: .*\[32, 12, 3, 3\]"):
        load_checkpoint(path)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated
def test_torchscript_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    with pytest.raises(UnsupportedCheckpoint, match=r"scripted\.pt: this is a TorchScript archive"):
        load_checkpoint(path)


def _tar_bytes(tmp_path: Path) -> bytes:
    member = tmp_path / "storages"
    member.write_bytes(b"x" * 10)
    archive = tmp_path / "old.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(member, arcname="storages")
    return archive.read_bytes()


def _npz_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.zeros(3))
    return path.read_bytes()


NOT_CHECKPOINTS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "png": (
        lambda _: b"\x89PNG\r\n\x1a\n" + bytes(64),
        "not a PyTorch/safetensors checkpoint .*image",
    ),
    "text": (lambda _: b"hello, I am not a model\n", "not a PyTorch/safetensors checkpoint"),
    "lfs pointer": (
        lambda _: (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:9dffd1ad\nsize 83519096\n"
        ),
        "Git LFS pointer",
    ),
    "keras h5": (lambda _: b"\x89HDF\r\n\x1a\n" + bytes(64), "HDF5"),
    "tar": (_tar_bytes, "tar archive"),
    "plain pickle": (lambda _: pickle.dumps({"a": 1}, protocol=4), "plain Python pickle"),
    "npz": (_npz_bytes, "not a torch.save file"),
    "empty": (lambda _: b"", "empty"),
}


@pytest.mark.parametrize("case", list(NOT_CHECKPOINTS))
def test_non_checkpoint_bytes_are_refused(tmp_path: Path, case: str) -> None:
    make, message = NOT_CHECKPOINTS[case]
    path = tmp_path / "model.pth"
    path.write_bytes(make(tmp_path))
    with pytest.raises(UnsupportedCheckpoint, match=rf"model\.pth: .*{message}"):
        load_checkpoint(path)


def test_unknown_global_in_a_zip_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "with_args.pth"
    torch.save({"state_dict": cf.tiny_state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(
        UnsafeCheckpoint, match=r"references argparse\.Namespace, which is not allowed"
    ):
        load_checkpoint(path)


def test_checksums(ffpp: dict[str, tuple[Path, torch.Tensor]]) -> None:
    path = ffpp["hongguliu"][0]
    digest = load_checkpoint(path).sha256
    assert load_checkpoint(path, expected_sha256="SHA256:" + digest.upper()).sha256 == digest
    with pytest.raises(
        ChecksumMismatch, match=rf"hongguliu_c0\.pkl: sha256 {digest} does not match 0+"
    ):
        load_checkpoint(path, expected_sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match="not a 64-digit hex digest"):
        load_checkpoint(path, expected_sha256="abc")


def test_family_override_and_mismatch(ffpp: dict[str, tuple[Path, torch.Tensor]]) -> None:
    path = ffpp["hongguliu"][0]
    assert load_checkpoint(path, family="ffpp").config == FAMILY_CONFIGS["ffpp"]
    with pytest.raises(
        UnsupportedCheckpoint,
        match=r"family 'ispl' .* expects a 1-output head, but this checkpoint has 2",
    ):
        load_checkpoint(path, family="ispl")
    with pytest.raises(UnsupportedCheckpoint, match="unknown family 'xception'"):
        load_checkpoint(path, family="xception")


def test_manifest_pins_hash_and_family(tmp_path: Path, canonical: StateDict) -> None:
    bare = tmp_path / "bare.safetensors"
    save_file(canonical, str(bare))
    digest = save_checkpoint(
        cf.reference_module(canonical), OWN_CONFIG, tmp_path / "own.safetensors"
    )
    manifest = tmp_path / "manifest.json"
    bare_digest = load_checkpoint(bare, family="ffpp").sha256
    files = {
        "own.safetensors": {"sha256": digest},
        "bare.safetensors": {"sha256": bare_digest, "family": "hongguliu"},
    }
    manifest.write_text(json.dumps({"files": files}))
    assert load_checkpoint(tmp_path / "own.safetensors").config == OWN_CONFIG
    assert load_checkpoint(bare).family == "hongguliu"
    manifest.write_text(json.dumps({"files": {"own.safetensors": {"sha256": "1" * 64}}}))
    with pytest.raises(ChecksumMismatch, match=r"manifest\.json"):
        load_checkpoint(tmp_path / "own.safetensors")
    manifest.write_text("{not json")
    with pytest.raises(UnsupportedCheckpoint, match=r"manifest\.json cannot be read"):
        load_checkpoint(tmp_path / "own.safetensors")


def test_files_over_2_gib_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.pth"
    with path.open("wb") as f:
        f.truncate(2 * 1024**3 + 1)  # sparse: no disk used
    with pytest.raises(UnsupportedCheckpoint, match="larger than the 2 GiB limit"):
        load_checkpoint(path)


def test_resolve_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert default_weights_path() == REPO / "weights" / "deepfake-bot-xception.safetensors"
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsNotInstalled) as info:
        resolve_weights(missing)
    text = str(info.value)
    assert str(missing) in text and "--weights PATH" in text and WEIGHTS_ENV in text
    monkeypatch.setenv(WEIGHTS_ENV, str(missing))
    assert default_weights_path() == missing
    with pytest.raises(WeightsNotInstalled, match=f"from {WEIGHTS_ENV}"):
        resolve_weights(None)
    with pytest.raises(WeightsNotInstalled, match="is a folder"):
        resolve_weights(tmp_path)
    with pytest.raises(WeightsNotInstalled, match="--weights"):
        load_checkpoint(missing)
    missing.write_bytes(b"x")
    assert resolve_weights(None) == missing


# --- 10: malicious pickles ----------------------------------------------------------------------


def _payloads(marker: Path) -> dict[str, tuple[cf.Call, str]]:
    create = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": (cf.Call(os.system, f"touch {shlex.quote(str(marker))}"), "posix.system"),
        "builtins.exec": (cf.Call(builtins.exec, create), "builtins.exec"),
        "builtins.eval": (cf.Call(builtins.eval, f"{create} or 0"), "builtins.eval"),
    }


@pytest.mark.parametrize("payload", ["os.system", "builtins.exec", "builtins.eval"])
def test_payloads_are_live(tmp_path: Path, payload: str) -> None:
    """Control: a naive unpickle of each payload does run it (so the refusals below mean it)."""
    marker = tmp_path / "pwned"
    call, _ = _payloads(marker)[payload]
    pickle.loads(pickle.dumps(call, protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("container", ["legacy", "zip"])
@pytest.mark.parametrize("payload", ["os.system", "builtins.exec", "builtins.eval"])
def test_code_execution_payloads_never_run(tmp_path: Path, container: str, payload: str) -> None:
    marker = tmp_path / "pwned"
    call, global_name = _payloads(marker)[payload]
    path = tmp_path / "evil.pth"
    obj = {"state_dict": cf.tiny_state_dict(), "hook": call}
    if container == "legacy":
        cf.write_legacy(obj, path)
    else:
        torch.save(obj, path)
    with pytest.raises(
        UnsafeCheckpoint,
        match=rf"evil\.pth: refusing to load: the file references {re.escape(global_name)}, "
        "which is not allowed",
    ):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_calling_an_allowed_class_is_refused(tmp_path: Path, container: str) -> None:
    path = tmp_path / "reduce.p"
    with cf.ffpp_code() as network_models:
        call = cf.Call(network_models.TransferModel, "xception")
        if container == "legacy":
            cf.write_legacy(call, path)
        else:
            torch.save(call, path)
    with cf.ffpp_importable():
        with pytest.raises(
            UnsafeCheckpoint, match=r"calls network\.models\.TransferModel\(\.\.\.\)"
        ):
            load_checkpoint(path)
        assert cf.foreign_modules_loaded() == []


def test_build_cannot_plant_setstate(tmp_path: Path) -> None:
    path = tmp_path / "build.p"
    planted = cf.planted_object(nn.Linear, {"__setstate__": OrderedDict, "_parameters": {}})
    cf.write_legacy(planted, path)
    with pytest.raises(UnsafeCheckpoint, match="forbidden attribute '__setstate__'"):
        load_checkpoint(path)


HUGE = 10**12


@pytest.mark.parametrize(
    ("obj", "numel_in_id", "numel_in_data", "message"),
    [
        (cf.tiny_state_dict, lambda n: n + HUGE, lambda n: n + HUGE, "more than the file holds"),
        (
            lambda: nn.Linear(2, 2),
            lambda n: n + HUGE,
            lambda n: n + HUGE,
            "more than the file holds",
        ),
        (
            cf.tiny_state_dict,
            lambda n: n + 1,
            lambda n: n,
            "declared with 7 elements but its data has 6",
        ),
        (
            lambda: nn.Linear(2, 2),
            lambda n: n - 1,
            lambda n: n - 1,
            "reaches past the end of its storage",
        ),
    ],
    ids=["state-dict-huge", "module-huge", "count-mismatch", "view-out-of-bounds"],
)
def test_forged_storage_sizes_are_refused(
    tmp_path: Path,
    obj: Callable[[], object],
    numel_in_id: Callable[[int], int],
    numel_in_data: Callable[[int], int],
    message: str,
) -> None:
    path = tmp_path / "forged.pth"
    cf.write_legacy(obj(), path, numel_in_id=numel_in_id, numel_in_data=numel_in_data)
    with pytest.raises(UnsupportedCheckpoint, match=message):
        load_checkpoint(path)


def test_zip_storage_shorter_than_declared_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(cf.tiny_state_dict(), good)
    forged = tmp_path / "forged.pth"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(forged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[:4] if "/data/" in info.filename else data)
    with pytest.raises(UnsupportedCheckpoint, match="holds 4 bytes, but its tensors need"):
        load_checkpoint(forged)


def test_own_format_marker_is_checked(tmp_path: Path, canonical: StateDict) -> None:
    newer = tmp_path / "newer.safetensors"
    save_file(
        canonical, str(newer), metadata={"format": "deepfake-bot/2", "deepfake_bot.config": "{}"}
    )
    with pytest.raises(UnsupportedCheckpoint, match=f"this version reads '{OWN_FORMAT}'"):
        load_checkpoint(newer)
    broken = tmp_path / "broken.safetensors"
    save_file(
        canonical,
        str(broken),
        metadata={"format": OWN_FORMAT, "deepfake_bot.config": '{"temperature": -1}'},
    )
    with pytest.raises(UnsupportedCheckpoint, match="embedded model config is invalid"):
        load_checkpoint(broken)


def test_saved_weights_are_readable_by_other_users(tmp_path: Path) -> None:
    """The Docker image runs as an unprivileged user and copies weights/ as root."""
    from detector.model import build_xception

    path = tmp_path / "w.safetensors"
    save_checkpoint(build_xception(2), ModelConfig(), path)
    assert path.stat().st_mode & 0o044 == 0o044


def test_loading_does_not_pull_in_torch_decompositions(tiny_checkpoint: Path) -> None:
    """Initialising meta tensors with ``normal_`` imports ~900 modules (sympy, torch._decomp…)
    and keeps ~150 MB of RSS in every serving process; loading must build without that."""
    import subprocess
    import sys

    probe = (
        "import sys, detector.pipeline\n"
        "from detector.checkpoints import load_classifier\n"
        "before = set(sys.modules)\n"
        f"load_classifier({str(tiny_checkpoint)!r})\n"
        "heavy = sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] in ('sympy', 'mpmath') or m.startswith('torch._decomp'))\n"
        "print(heavy[:5])\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
