"""No Docker engine runs on the project's machines, so the Dockerfile's promises are checked
here another way: its instructions (CPU wheel, non-root user, healthcheck, entry point), the
exact healthcheck command against the real health server, the wheel its build stage installs,
and the settings its environment names."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.http_health import HealthServer
from bot.settings import Settings

from .conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    ins = _instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_cpu_only_torch_wheel() -> None:
    runs = " ".join(rest for w, rest in _instructions() if w == "RUN")
    assert "download.pytorch.org/whl/cpu" in runs
    assert "torch.cuda.is_available()" in runs  # the build fails if a CUDA build slipped in


def test_runs_as_a_non_root_user_with_healthcheck_and_entrypoint() -> None:
    final = _final_stage()
    users = [rest for w, rest in final if w == "USER"]
    assert users and users[-1] not in {"root", "0"}
    words = [w for w, _ in final]
    assert words.index("USER") < words.index("CMD")
    assert any(w == "HEALTHCHECK" and "/healthz" in rest for w, rest in final)
    assert ("ENTRYPOINT", '["deepfake-bot"]') in final
    assert ("CMD", '["run"]') in final


def test_copied_paths_exist_and_research_data_is_not_copied() -> None:
    for w, rest in _instructions():
        if w == "COPY" and "--from=" not in rest:
            sources = [p for p in rest.split() if not p.startswith("--")][:-1]
            for src in sources:
                assert (REPO / src).exists(), src
    assert "shared" not in DOCKERFILE


def test_environment_names_are_real_settings() -> None:
    env_line = " ".join(rest for w, rest in _final_stage() if w == "ENV")
    names = set(re.findall(r"([A-Z][A-Z0-9_]+)=", env_line))
    known = {name.upper() for name in Settings.model_fields}
    known |= {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "MALLOC_ARENA_MAX",
              "DEEPFAKE_BOT_WEIGHTS"}
    assert names <= known, names - known


async def test_healthcheck_command_passes_against_the_health_server() -> None:
    (cmd,) = [rest for w, rest in _final_stage() if w == "HEALTHCHECK"]
    argv = json.loads(cmd[cmd.index("CMD") + 3 :].strip())
    server = HealthServer("127.0.0.1", 0, ready=lambda: True)
    await server.start()
    try:
        env = {**os.environ, "HTTP_PORT": str(server.port), "NO_PROXY": "127.0.0.1"}
        argv[0] = sys.executable
        proc = await asyncio.create_subprocess_exec(*argv, env=env)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        await server.stop()
    # And it fails when nothing answers.
    env = {**os.environ, "HTTP_PORT": str(server.port)}
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stderr=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(proc.wait(), 30) != 0


@pytest.mark.slow
def test_build_stage_wheel_holds_the_packages_and_the_entry_point(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("deepfake_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("detector/service.py", "detector/checkpoints/loader.py",
                   "bot/main.py", "bot/runner.py", "bot/telegram_bot/adapter.py"):
        assert module in names, module
    assert not any(n.startswith("tests/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "deepfake-bot = bot.main:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_the_image_installs_the_serving_package_without_the_training_extra() -> None:
    runs = " ".join(rest for w, rest in _instructions() if w == "RUN")
    assert re.search(r'pip install "\.\[\$\{EXTRAS\}\]"', runs), "the build installs the package"
    (default,) = [rest for w, rest in _instructions() if w == "ARG" and rest.startswith("EXTRAS")]
    extras = default.partition("=")[2].split(",")
    assert set(extras) <= {"redis", "serve"}, "serving extras only, never train or dev"
    assert "train" not in runs and "[dev]" not in runs
    pyproject = (REPO / "pyproject.toml").read_text()
    for extra in ("redis", "serve"):  # the extras the Dockerfile names exist
        assert re.search(rf"^{extra} = \[", pyproject, re.M), extra
