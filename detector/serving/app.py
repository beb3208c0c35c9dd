"""The Ray Serve application: the V2 ingress bound to the scorer deployment. ``build`` is the
builder a Serve config file names (``import_path: detector.serving.app:build``), for
``serve run`` and KubeRay's ``RayService``; ``deepfake-bot serve`` calls :func:`build_app`.
"""

from __future__ import annotations

from typing import Any, cast

import ray
from ray.serve import Application, Deployment

from detector.serving.ingress import V2Ingress
from detector.serving.options import ServeOptions, gpus_per_replica, scorer_deployment_options
from detector.serving.scorer import FaceScorer

APP_NAME = "deepfake-bot"


def cluster_gpus() -> float:
    """GPUs in the connected Ray cluster (0 when not connected)."""
    if not ray.is_initialized():
        return 0.0
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return float(resources.get("GPU", 0.0))


def build_app(options: ServeOptions, *, gpus: float | None = None) -> Application:
    """The ingress on top of the scorer, placed with ``gpus`` per replica (None: from
    ``options.num_gpus`` or the cluster's GPUs)."""
    per_replica = gpus if gpus is not None else gpus_per_replica(options, cluster_gpus())
    # (@serve.deployment's stubs keep the class type; at run time these are Deployments.)
    scorer_deployment = cast(Deployment, FaceScorer)
    scorer = scorer_deployment.options(**scorer_deployment_options(options, per_replica))
    return cast(Deployment, V2Ingress).bind(scorer.bind(options), options)


def build(args: dict[str, Any]) -> Application:
    """Serve config builder: ``args`` are :class:`ServeOptions` fields, e.g.
    ``{"weights": "/models/x.safetensors", "max_batch_size": 32, "max_replicas": 4}``."""
    return build_app(ServeOptions.from_args(dict(args)))
