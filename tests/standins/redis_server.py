"""A real ``redis-server`` (the Debian package) on a free loopback port, for the multi-replica
tests. Started with no persistence in a temporary directory and stopped by PID.

Without the binary the tests skip with the reason, unless ``DEEPFAKE_BOT_REDIS_TESTS=required``
(``scripts/test`` sets it after installing the package), when they fail instead: CI never skips
them silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path, deadline_s: float = 20.0) -> Iterator[str]:
    """Yield ``redis://127.0.0.1:PORT/0`` for a fresh server; stop it afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("DEEPFAKE_BOT_REDIS_TESTS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    log = workdir / "redis.log"
    proc = subprocess.Popen(
        [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--logfile", str(log),
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + deadline_s
        while not _ping(port):
            if proc.poll() is not None or time.monotonic() > end:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                pytest.fail(f"redis-server did not start on {port}:\n{tail}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
