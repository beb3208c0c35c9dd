"""What the bot says about its model (``/about``): name, verdict bands and measured figures.

Built by ``main`` from the loaded weights' config, so the text always matches the model that
answers. Figures come from the config's ``extra`` entries (written when a model is evaluated);
without them the bot says that none ship with the weights rather than quoting numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from detector.config import Band, ModelConfig


@dataclass(frozen=True)
class ModelCard:
    name: str
    description: str = ""
    thresholds: tuple[float, float] = (0.3, 0.7)
    figures: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ModelConfig) -> ModelCard:
        return cls(
            name=config.name,
            description=config.description,
            thresholds=config.thresholds,
            figures=dict(config.extra),
        )

    def lines(self) -> list[str]:
        low, high = (round(t * 100) for t in self.thresholds)
        out = [f"Model: {self.name}"]
        if self.description:
            out.append(self.description)
        out += [
            "",
            "How scores map to verdicts:",
            f"• below {low}%: {Band.REAL.label}",
            f"• {low}% to {high}%: {Band.UNCERTAIN.label}",
            f"• {high}% and above: {Band.FAKE.label}",
            "",
        ]
        if self.figures:
            out.append("Measured figures:")
            out += [f"• {key}: {value}" for key, value in sorted(self.figures.items())]
        else:
            out.append("No measured figures ship with these weights.")
        return out
