"""The in-project Xception is timm's ``legacy_xception``: same keys, shapes and outputs."""

from __future__ import annotations

import pytest
import torch

from detector.model import build_xception

timm = pytest.importorskip("timm")


@pytest.mark.parametrize("num_classes", [1, 2, 1000])
def test_same_state_dict_layout_as_timm(num_classes: int) -> None:
    ours = build_xception(num_classes).state_dict()
    theirs = timm.create_model("legacy_xception", pretrained=False, num_classes=num_classes)
    ref = theirs.state_dict()
    assert list(ours) == list(ref)  # same names in the same order
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}
    assert len(ours) == 276


def test_same_outputs_as_timm_in_eval_and_train() -> None:
    torch.manual_seed(0)
    theirs = timm.create_model("legacy_xception", pretrained=False, num_classes=2)
    with torch.no_grad():  # non-trivial BN statistics
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    ours = build_xception(2)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 96)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
    ours.train()
    theirs.train()
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)  # batch statistics path too
    assert sum(p.numel() for p in ours.parameters()) == 20_811_050
