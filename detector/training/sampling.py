"""Which training images each batch holds: draw weights that balance sources and classes
(``--balance``, ``--cell-weight``) and the batch sampler that, with ``--pair``, brings an
image's other-label partner into the same batch with a shared augmentation seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from detector.training.manifest import Sample


def sampling_weights(
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
