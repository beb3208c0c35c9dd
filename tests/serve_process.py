"""``deepfake-bot serve`` as the tests run it: the real command in a subprocess on 127.0.0.1 with
a free port, its own Ray temp folder and a start deadline; stopped by PID (SIGTERM, then the
process group on a deadline), after which no process of that Ray may be left.

The ``v2_server`` fixture in ``conftest.py`` starts one for the whole session (Ray's start-up
is the expensive part), so every test file that needs a real V2 server shares it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
START_DEADLINE_S = 240.0
STOP_DEADLINE_S = 60.0


@dataclass
class V2Server:
    """A running ``deepfake-bot serve``: ``url`` is ``http://127.0.0.1:PORT`` (no slash)."""

    url: str
    model_name: str
    weights: Path
    process: subprocess.Popen[bytes]
    ray_temp_dir: Path
    log_path: Path
    start_s: float = 0.0
    leftovers: list[str] = field(default_factory=list)

    def model_url(self, suffix: str = "") -> str:
        return f"{self.url}/v2/models/{self.model_name}{suffix}"

    def log_tail(self, chars: int = 6000) -> str:
        """The command's own output, then the tails of Ray's error logs."""
        parts = [self.log_path.read_text(errors="replace")[-chars:]]
        for log in sorted(self.ray_temp_dir.glob("session_*/logs/**/*.err"))[-6:]:
            text = log.read_text(errors="replace").strip()
            if text:
                parts.append(f"--- {log.name}\n{text[-1500:]}")
        return "\n".join(parts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ray_processes(temp_dir: Path) -> list[psutil.Process]:
    """Processes whose command line names this Ray's temp folder (GCS, raylet, agents)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(temp_dir) in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def _describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid} {proc.name()}")
        except psutil.NoSuchProcess:
            continue
    return out


def _wait_ready(server: V2Server, started: float) -> None:
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"deepfake-bot serve exited with {server.process.returncode} "
                               f"before it was ready:\n{server.log_tail()}")
        try:
            if requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() - started > START_DEADLINE_S:
            raise RuntimeError(f"deepfake-bot serve was not ready within {START_DEADLINE_S:.0f}"
                               f" s:\n{server.log_tail()}")
        time.sleep(0.5)


def stop(server: V2Server) -> int:
    """SIGTERM, then SIGKILL to the process group (and to any Ray process of this server still
    there) on a deadline. Returns the exit status; ``server.leftovers`` names what had to be
    killed after the command itself was gone."""
    proc = server.process
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    children += _ray_processes(server.ray_temp_dir)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    deadline = time.monotonic() + 15
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.25)
    left = _alive(children) + _alive(_ray_processes(server.ray_temp_dir))
    server.leftovers = _describe(left)
    for p in left:  # only processes this server started
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue
    return proc.returncode


@contextmanager
def running_server(
    weights: Path, *extra: str, model_name: str = "deepfake-xception"
) -> Iterator[V2Server]:
    # Short, fresh folder: Ray's unix sockets live under it (paths are limited to 107 bytes).
    temp_dir = Path(tempfile.mkdtemp(prefix="dfbray-"))
    port = free_port()
    log_path = temp_dir / "serve.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "bot.main", "-v", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--weights", str(weights), "--model-name", model_name,
            "--ray-temp-dir", str(temp_dir), *extra]  # fmt: skip
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = V2Server(f"http://127.0.0.1:{port}", model_name, weights, process, temp_dir,
                      log_path)
    try:
        _wait_ready(server, started)
        server.start_s = time.monotonic() - started
        yield server
    finally:
        stop(server)
        # Keep the logs of a server that did not stop cleanly; else remove the folder.
        if process.returncode == 0 and not server.leftovers:
            import shutil

            shutil.rmtree(temp_dir, ignore_errors=True)
