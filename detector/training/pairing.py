"""Real/fake partners: which training images pair up (DFDC's fake and the real frame it was
made from share a group), and the manipulation maps the ``--mask-loss`` head learns from a
partner pair drawn into one batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from detector.training.manifest import FAKE, Sample


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
