"""The KubeRay manifest in docs/ parses, is a RayService, and its Serve config names a builder
that exists, with args the builder accepts."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from detector.serving.options import ServeOptions

from .conftest import REPO

MANIFEST = REPO / "docs" / "kuberay-rayservice.yaml"


def _module_path(dotted: str) -> Path:
    return REPO.joinpath(*dotted.split(".")).with_suffix(".py")


def test_the_rayservice_manifest_names_our_builder() -> None:
    doc = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert doc["kind"] == "RayService" and doc["apiVersion"] == "ray.io/v1"
    serve_config = yaml.safe_load(doc["spec"]["serveConfigV2"])
    (app,) = serve_config["applications"]
    module, _, attr = app["import_path"].partition(":")
    path = _module_path(module)
    assert path.is_file(), f"{app['import_path']}: no {path}"
    functions = {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(n, ast.FunctionDef)}
    assert attr in functions, f"{app['import_path']}: {module} defines no {attr}()"
    options = ServeOptions.from_args(app["args"])
    assert options.num_gpus == 1.0 and options.max_replicas >= options.min_replicas
    cluster = doc["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (workers,) = cluster["workerGroupSpecs"]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_the_builder_makes_an_application(tiny_checkpoint: Path) -> None:
    """What ``serve run`` / KubeRay call: no cluster needed to build the application graph."""
    from ray.serve import Application

    from detector.serving.app import build

    app = build({"weights": str(tiny_checkpoint), "max_batch_size": "8", "num_gpus": "0"})
    assert isinstance(app, Application)
