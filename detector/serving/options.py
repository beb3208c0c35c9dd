"""What a served detector is configured with, as plain data (no Ray): the weights, the model
name, the batching, the autoscaling and the placement of the replicas, and the request bounds.
``deepfake-bot serve`` builds :class:`ServeOptions` from its flags, ``app.build`` from a Ray Serve
config file's ``args``; :func:`scorer_deployment_options` turns them into Ray Serve's vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL_NAME = "deepfake-xception"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ServeOptions:
    """``max_batch_size`` counts faces (crops of several requests are scored together);
    ``num_gpus`` None means one GPU per replica when the cluster has one, else none."""

    weights: Path | None = None
    family: str | None = None
    sha256: str | None = None
    precision: str = "auto"
    model_name: str = DEFAULT_MODEL_NAME
    max_batch_size: int = 32
    batch_wait_s: float = 0.01
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0
    max_ongoing_requests: int = 64
    # Requests waiting for a scorer replica beyond this are refused at once (HTTP 503, "busy").
    max_queued_requests: int = 256
    num_cpus: float = 1.0
    num_gpus: float | None = None
    threads: int | None = None
    max_faces_per_request: int = 256
    max_request_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.model_name or "/" in self.model_name:
            raise ValueError(f"invalid model name {self.model_name!r}")
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if not (math.isfinite(self.batch_wait_s) and self.batch_wait_s >= 0):
            raise ValueError("the batch wait must be >= 0")
        if not (1 <= self.min_replicas <= self.max_replicas):
            raise ValueError(
                f"need 1 <= min replicas <= max replicas, got {self.min_replicas}, "
                f"{self.max_replicas}"
            )
        if self.target_ongoing_requests <= 0:
            raise ValueError("target ongoing requests must be positive")
        if self.max_ongoing_requests < 1 or self.max_queued_requests < 1:
            raise ValueError("max ongoing and max queued requests must be at least 1")
        if self.num_cpus < 0 or (self.num_gpus is not None and self.num_gpus < 0):
            raise ValueError("num_cpus and num_gpus must be >= 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be at least 1")
        if self.max_faces_per_request < 1 or self.max_request_bytes < 1024:
            raise ValueError("the request bounds are too small")

    def replace(self, **changes: Any) -> ServeOptions:
        return dataclasses.replace(self, **changes)

    @property
    def torch_threads(self) -> int:
        """Torch intra-op threads in a replica: ``threads``, else its CPU share (at least 1)."""
        return self.threads or max(1, math.floor(self.num_cpus))

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ServeOptions:
        """From a Ray Serve config file's ``args`` (strings or YAML scalars), names as the
        fields; unknown names are refused."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(args) - set(fields)
        if unknown:
            raise ValueError(f"unknown serve args: {sorted(unknown)}; known: {sorted(fields)}")
        typed: dict[str, Any] = {}
        for name, value in args.items():
            default = getattr(cls, name, None)
            if value is None:
                typed[name] = None
            elif name == "weights":
                typed[name] = Path(str(value))
            elif name in ("num_gpus",) or isinstance(default, float):
                typed[name] = float(value)
            elif isinstance(default, int) or name == "threads":
                typed[name] = int(value)
            else:
                typed[name] = str(value)
        return cls(**typed)


def gpus_per_replica(options: ServeOptions, cluster_gpus: float) -> float:
    """``num_gpus`` as asked, else one per replica when the cluster has a GPU."""
    if options.num_gpus is not None:
        return options.num_gpus
    return 1.0 if cluster_gpus >= 1 else 0.0


def scorer_deployment_options(options: ServeOptions, num_gpus: float) -> dict[str, Any]:
    """Keyword arguments for the scorer deployment's ``.options(...)``."""
    autoscaling: dict[str, Any] = {
        "min_replicas": options.min_replicas,
        "max_replicas": options.max_replicas,
        "target_ongoing_requests": options.target_ongoing_requests,
    }
    actor: dict[str, Any] = {"num_cpus": options.num_cpus}
    if num_gpus > 0:
        actor["num_gpus"] = num_gpus
    out: dict[str, Any] = {
        "ray_actor_options": actor,
        # A request is at least one face, so a full batch needs max_batch_size requests in.
        "max_ongoing_requests": max(options.max_ongoing_requests, options.max_batch_size),
        "max_queued_requests": options.max_queued_requests,
    }
    if options.min_replicas == options.max_replicas:
        out["num_replicas"] = options.min_replicas
    else:
        out["autoscaling_config"] = autoscaling
    return out
