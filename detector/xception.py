"""The canonical Xception network (Chollet 2017) in the exact module layout of timm's
``legacy_xception`` and every FaceForensics++-tradition checkpoint (276 state-dict tensors,
``../shared/docs/checkpoints.md`` §1).

A small in-project copy of timm's module (Apache-2.0, after Cadene's port) rather than an import
of timm: importing timm pulls in torchvision and huggingface_hub and adds about 210 MB of RSS to
every bot process (measured on this machine); the network itself is 80 lines. A test checks that
key names, shapes and outputs are identical to timm's ``legacy_xception``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 (``conv1``) then pointwise 1x1 (``pointwise``), no biases."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, kernel_size, 1, padding, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))  # type: ignore[no-any-return]


class Block(nn.Module):
    """``reps`` x (ReLU, SeparableConv, BN), optional stride-2 max-pool, residual connection
    (a 1x1 conv + BN on the skip path when the shape changes)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        reps: int,
        stride: int = 1,
        start_with_relu: bool = True,
        grow_first: bool = True,
    ) -> None:
        super().__init__()
        self.skip: nn.Conv2d | None
        if out_ch != in_ch or stride != 1:
            self.skip = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_ch)
        else:
            self.skip = None
        layers: list[nn.Module] = []
        for i in range(reps):
            if grow_first:
                inc, outc = (in_ch if i == 0 else out_ch), out_ch
            else:
                inc, outc = in_ch, (in_ch if i < reps - 1 else out_ch)
            layers += [nn.ReLU(inplace=True), SeparableConv2d(inc, outc), nn.BatchNorm2d(outc)]
        if start_with_relu:
            layers[0] = nn.ReLU(inplace=False)  # the block input is also the skip input
        else:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x: torch.Tensor = self.rep(inp)
        skip = self.skipbn(self.skip(inp)) if self.skip is not None else inp
        return x + skip


class Xception(nn.Module):
    """Xception with a ``num_classes`` head ``fc``; ``drop_rate`` is functional dropout before
    the head (training only; it adds no state-dict keys)."""

    num_features = 2048

    def __init__(self, num_classes: int = 2, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)
        self.block2 = Block(128, 256, 2, 2)
        self.block3 = Block(256, 728, 2, 2)
        self.block4 = Block(728, 728, 3, 1)
        self.block5 = Block(728, 728, 3, 1)
        self.block6 = Block(728, 728, 3, 1)
        self.block7 = Block(728, 728, 3, 1)
        self.block8 = Block(728, 728, 3, 1)
        self.block9 = Block(728, 728, 3, 1)
        self.block10 = Block(728, 728, 3, 1)
        self.block11 = Block(728, 728, 3, 1)
        self.block12 = Block(728, 1024, 2, 2, grow_first=False)
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, self.num_features)
        self.bn4 = nn.BatchNorm2d(self.num_features)
        self.fc = nn.Linear(self.num_features, num_classes)
        for m in self.modules():
            # Built on the meta device (checkpoint loading) there are no values to initialise,
            # and meta `normal_` would import ~900 modules of torch's Python decompositions
            # (about 150 MB RSS kept for the life of the process).
            if isinstance(m, nn.Conv2d) and m.weight.device.type != "meta":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = F.relu(self.bn3(self.conv3(x)), inplace=True)
        return F.relu(self.bn4(self.conv4(x)), inplace=True)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.drop_rate:
            x = F.dropout(x, self.drop_rate, training=self.training)
        return self.fc(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
