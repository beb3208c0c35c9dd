"""Several detector networks served as one: :class:`LogitEnsemble` averages their logits.

Why: separately fine-tuned runs of the same recipe disagree a lot on pictures unlike the
validation data (the model card's astronaut photo scores 0.02 to 0.99 across seeds), and
averaging them is the plain way to take that lottery out of a verdict. Averaging weights
instead (a "soup") was measured and lost AUC: the runs end in different basins.

The members share one preprocessing (their checkpoints' configs must agree on everything
but calibration); the ensemble is an ``nn.Module`` with the members' input and output, so the
classifier, calibration, bf16 checks and the V2 server treat it like one network. On disk it
is the project's safetensors with every member's canonical keys under ``member<i>.``.
"""

from __future__ import annotations

import torch
from torch import nn

MEMBER_PREFIX = "member"


class LogitEnsemble(nn.Module):
    """The mean of the members' logits (for a two-class softmax head, the mean of their
    fake-vs-real margins, which calibration then scales once for the whole ensemble)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = [member(x) for member in self.members]
        return torch.stack(outs).mean(dim=0)


def member_key(index: int, key: str) -> str:
    return f"{MEMBER_PREFIX}{index}.{key}"


def split_member_keys(
    state: dict[str, torch.Tensor], count: int
) -> list[dict[str, torch.Tensor]]:
    """``member<i>.<key>`` → one state dict per member. Every key must belong to a member
    ``0 <= i < count``, and every member must have keys: strict, like any other load."""
    parts: list[dict[str, torch.Tensor]] = [{} for _ in range(count)]
    for key, value in state.items():
        head, dot, rest = key.partition(".")
        index = head[len(MEMBER_PREFIX) :]
        if not (dot and head.startswith(MEMBER_PREFIX) and index.isdigit()):
            raise ValueError(f"ensemble key {key!r} does not start with '{MEMBER_PREFIX}<i>.'")
        i = int(index)
        if i >= count or index != str(i):
            raise ValueError(f"ensemble key {key!r} names a member outside 0..{count - 1}")
        parts[i][rest] = value
    empty = [i for i, p in enumerate(parts) if not p]
    if empty:
        raise ValueError(f"ensemble of {count} has no weights for member(s) {empty}")
    return parts
