"""Deploying the web front: the page's files ship in the wheel and load nothing from elsewhere,
the Dockerfile's healthcheck passes against the web server as it did against the health server,
and ``compose.yaml`` runs the image with its port, data volume, ``.env`` and a stop grace that
lets in-flight checks answer."""

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
import yaml

from bot.settings import Settings
from bot.web.app import STATIC

from .conftest import REPO
from .standins.web_harness import FakeDetector, always, analysis, running_web
from .test_dockerfile import _final_stage

PAGE_FILES = ("index.html", "app.js", "style.css")


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name in PAGE_FILES:
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "@import" not in text and "<iframe" not in text, name
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert 'name="viewport"' in html and "never stored" in html


async def test_the_healthcheck_passes_against_the_web_server() -> None:
    (cmd,) = [rest for w, rest in _final_stage() if w == "HEALTHCHECK"]
    argv = json.loads(cmd[cmd.index("CMD") + 3 :].strip())
    argv[0] = sys.executable
    async with running_web(FakeDetector(always(analysis(0.5)))) as run:
        env = {**os.environ, "HTTP_PORT": str(run.web.port), "NO_PROXY": "127.0.0.1"}
        proc = await asyncio.create_subprocess_exec(*argv, env=env)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


def test_compose_runs_the_image_with_port_volume_env_and_grace() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    (service,) = compose["services"].values()
    assert service["build"] == "."
    assert [e["path"] for e in service["env_file"]] == [".env"]
    expose = [rest for w, rest in _final_stage() if w == "EXPOSE"]
    port = service["environment"]["HTTP_PORT"]
    assert expose == [port]
    assert any(p.endswith(f":{port}") for p in service["ports"])
    volumes = [rest for w, rest in _final_stage() if w == "VOLUME"]
    assert volumes == ['["/data"]']
    (volume,) = service["volumes"]
    name, mount = volume.split(":")
    assert mount == "/data" and name in compose["volumes"]
    known = {n.upper() for n in Settings.model_fields}
    assert set(service["environment"]) <= known
    grace = Settings.model_fields["shutdown_grace_s"].default
    assert float(service["stop_grace_period"].rstrip("s")) > grace


@pytest.mark.slow
def test_the_wheel_ships_the_page(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("deepfake_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in PAGE_FILES:
        assert f"bot/web/static/{name}" in names, name
