"""The project's layering rules, checked on the source: the detector never imports a chat
library; chat adapters and the bot core never import torch (only the composition root may
reach the detector)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

CHAT = {"telegram", "discord", "aiogram"}
TORCH = {"torch", "timm", "torchvision"}
# What adapters may take from the detector: types and errors, none of which pull in torch.
LIGHT_DETECTOR_MODULES = {
    "detector.errors",
    "detector.config",
    "detector.results",
    "detector.idle",
    "detector.file_types",
}
COMPOSITION_ROOTS = {"main.py"}


def _full_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _full_imports(path)}


@pytest.mark.parametrize("path", sorted((REPO / "detector").rglob("*.py")), ids=str)
def test_detector_never_imports_chat_libraries(path: Path) -> None:
    assert not (_imports(path) & CHAT)


@pytest.mark.parametrize("path", sorted((REPO / "bot").rglob("*.py")), ids=str)
def test_bot_modules_never_import_torch(path: Path) -> None:
    if path.name in COMPOSITION_ROOTS:
        pytest.skip("composition root builds the detector")
    assert not (_imports(path) & TORCH), "adapters talk to the detector through main's objects"
    heavy = {m for m in _full_imports(path) if m.startswith("detector")} - LIGHT_DETECTOR_MODULES
    assert not heavy, f"only {sorted(LIGHT_DETECTOR_MODULES)} may be imported outside main"


def test_light_detector_modules_do_not_load_torch() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in sorted(LIGHT_DETECTOR_MODULES))
        + "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_no_module_shadows_a_chat_library() -> None:
    for name in ("discord", "telegram"):
        assert not (REPO / "bot" / f"{name}.py").exists()
