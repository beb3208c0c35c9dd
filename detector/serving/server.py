"""The body of ``deepfake-bot serve``: start a local Ray (or join one with ``--address``), deploy
the application, serve the V2 routes on ``--host:--port`` until SIGTERM or SIGINT, then take it
down and exit 0.

A local Ray stays on this machine: its node address is 127.0.0.1, no dashboard, no usage
statistics, token authentication with a fresh per-run token kept in the environment (never
written to the home folder), and its sessions and logs in a dedicated folder (removed at exit
unless ``--ray-temp-dir`` named it). On a joined cluster only this application is deleted at
exit; the cluster and its other Serve applications stay.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from detector.serving.commands import options_from_args

_log = logging.getLogger(__name__)


def _local_ray_environment() -> None:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray's single-machine mode (its default on macOS/Windows): the node's address is the
    # loopback one instead of this machine's network address, so GCS, raylet and agents are
    # reached on 127.0.0.1 only.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def _check_weights(args: argparse.Namespace) -> Path:
    """The weights' absolute path; fails before Ray starts when they cannot load (raises
    ``CheckpointError``)."""
    from detector.checkpoints import load_checkpoint, resolve_weights

    path = resolve_weights(args.weights).resolve()
    load_checkpoint(path, family=args.family, expected_sha256=args.sha256)
    return path


def run_serve(args: argparse.Namespace) -> int:
    from detector.errors import CheckpointError

    try:
        options = options_from_args(args)
        weights = _check_weights(args)
    except (ValueError, CheckpointError) as exc:
        sys.stderr.write(f"deepfake-bot serve: {exc}\n")
        return 2
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local = args.address is None
    if local or args.weights is not None:
        # The replicas load this very file (on a joined cluster it must exist on every node;
        # without --weights each node resolves its own default).
        options = options.replace(weights=weights)
    temp_dir: Path | None = None
    made_temp = False
    if local:
        _local_ray_environment()
        temp_dir = args.ray_temp_dir
        if temp_dir is None:
            temp_dir, made_temp = Path(tempfile.mkdtemp(prefix="dfb-ray-")), True
        temp_dir = temp_dir.resolve()

    import ray
    from ray import serve

    from detector.factory import available_cores
    from detector.serving.app import APP_NAME, build_app

    started = time.monotonic()
    if local:
        assert temp_dir is not None
        _log.info("starting a local Ray (temp dir %s)", temp_dir)
        ray.init(
            include_dashboard=False,
            num_cpus=available_cores(),
            _node_ip_address="127.0.0.1",
            _temp_dir=str(temp_dir),
            configure_logging=False,
        )
    else:
        try:
            ray.init(address=args.address, configure_logging=False)
        except (ConnectionError, RuntimeError) as exc:
            # Most often the cluster's token authentication: Ray's own message is buried in
            # its retries; say what to set.
            sys.stderr.write(
                f"deepfake-bot serve: cannot join the Ray cluster at {args.address}: {exc}\n"
                "  A cluster started with token authentication needs the same here: "
                "RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token).\n"
            )
            return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("%s: shutting down", signal.Signals(signum).name)
        stop.set()

    # After ray.init, which installs its own SIGTERM handler in the driver.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(build_app(options), name=APP_NAME, route_prefix="/")
        url = f"http://{args.host}:{args.port}/v2/models/{options.model_name}"
        sys.stderr.write(f"deepfake-bot serve: serving {url} (Open Inference Protocol V2), "
                         f"ready after {time.monotonic() - started:.1f} s\n")
        sys.stderr.flush()
        while not stop.wait(1.0):
            pass
    except Exception:
        if not stop.is_set():
            _log.exception("the deployment failed")
            code = 1
    finally:
        try:
            if local:
                serve.shutdown()  # type: ignore[no-untyped-call]
            else:
                serve.delete(APP_NAME)
        except Exception:  # shutting down anyway: say so, then let Ray go
            _log.exception("Serve did not shut down cleanly")
        ray.shutdown()
        if made_temp and temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return code
