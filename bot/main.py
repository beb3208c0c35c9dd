"""``deepfake-bot``: the composition root. A thin parser whose commands come from their wings
(``detector.commands``: check; ``detector.tools.commands``: bench, bench-faces;
``detector.training.commands``: train, eval, calibrate, import-keras-xception;
``detector.serving.commands``: serve) and the bots'
own ``run``, for which it builds the detector, the chat adapters and the service and passes
them in. Heavy imports (torch) happen only inside the commands that need them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from detector import commands as engine_commands
from detector.serving import commands as serving_commands
from detector.tools import commands as tool_commands
from detector.training import commands as training_commands

if TYPE_CHECKING:
    from bot.core import ChatSettings, ModelCard
    from bot.redis_client import SharedRedis
    from bot.settings import Settings
    from detector.pipeline import Pipeline
    from detector.service import ServiceOptions

_log = logging.getLogger(__name__)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def build_parser() -> argparse.ArgumentParser:
    """Each wing adds its own commands (only argparse is imported until one runs)."""
    parser = argparse.ArgumentParser(
        prog="deepfake-bot",
        description="Find faces in images and score each for face manipulation (deepfakes).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)
    engine_commands.add_parsers(sub)
    tool_commands.add_parsers(sub)
    training_commands.add_parsers(sub)
    serving_commands.add_parsers(sub)
    run = sub.add_parser(
        "run",
        help="run the chat bots (Telegram, Discord), the web page and HTTP API, /metrics and "
        "health endpoints; configured by environment variables or .env (see .env.example)",
    )
    run.set_defaults(handler=lambda _args: _run())
    return parser


def _run() -> int:
    """``deepfake-bot run``: settings from the environment, the detector, the bots."""
    from pydantic import ValidationError

    from bot.core import ChatSettings, ModelCard
    from bot.runner import configure_logging
    from bot.settings import Settings
    from detector.errors import CheckpointError, DetectorUnavailable, FinderUnavailable

    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(f"deepfake-bot run: invalid settings:\n{exc}\n")
        return 2
    configure_logging(settings)
    # python-telegram-bot: opt in to time periods as timedelta now (its future default)
    # instead of a deprecation warning on every flood-control error.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    if settings.telegram_token is None and settings.discord_token is None:
        if not (settings.http_enabled and settings.web_enabled):
            sys.stderr.write(
                "deepfake-bot run: nothing to serve: set TELEGRAM_TOKEN and/or DISCORD_TOKEN, "
                "or leave HTTP_ENABLED and WEB_ENABLED on for the web page (see .env.example)\n"
            )
            return 2
        _log.info("no chat platform is configured (TELEGRAM_TOKEN, DISCORD_TOKEN): serving the "
                  "web page and HTTP API only")
    try:
        chat_settings = ChatSettings.load(settings.chat_settings_file)
        pipeline = build_pipeline(settings)
    except (ValueError, CheckpointError, FinderUnavailable, DetectorUnavailable) as exc:
        sys.stderr.write(f"deepfake-bot run: {exc}\n")
        return 2
    card = ModelCard.from_config(pipeline.classifier.config)
    return asyncio.run(_serve(settings, pipeline, card, chat_settings))


def build_pipeline(settings: Settings) -> Pipeline:
    """The detector pipeline the settings describe: the network here or on the V2 server of
    ``DETECTOR_URL`` (raises ``CheckpointError`` subclasses, ``DetectorUnavailable``)."""
    from detector.factory import build_classifier, build_remote_classifier
    from detector.factory import build_pipeline as engine_pipeline
    from detector.images import ImageLimits
    from detector.remote import RemoteOptions
    from detector.scorer import Scorer

    classifier: Scorer
    if settings.detector_backend == "remote":
        assert settings.detector_url is not None, "validated by Settings"
        options = RemoteOptions(
            timeout_s=settings.detector_timeout_s,
            connect_timeout_s=settings.detector_connect_timeout_s,
            retries=settings.detector_retries,
            backoff_s=settings.detector_retry_backoff_s,
            binary=settings.detector_v2_binary,
            start_timeout_s=settings.detector_start_timeout_s,
        )
        url, model = settings.detector_url, settings.detector_model
        classifier = build_remote_classifier(url, model, options)
    else:
        classifier = build_classifier(
            settings.deepfake_bot_weights,
            family=settings.detector_family,
            sha256=settings.detector_sha256,
            precision=settings.detector_precision,
            threads=settings.detector_threads,
        )
    limits = ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    return engine_pipeline(classifier, max_faces=settings.max_faces, limits=limits)


def service_options(settings: Settings) -> ServiceOptions:
    """The detector service's bounds, video limits included, from the settings."""
    from detector.service import ServiceOptions
    from detector.video_results import VideoLimits

    video = VideoLimits(
        max_bytes=settings.max_video_bytes,
        max_duration_s=settings.max_video_seconds,
        max_pixels=settings.max_video_pixels,
        max_frames=settings.video_frames,
        decode_timeout_s=settings.video_decode_timeout_s,
    )
    return ServiceOptions(
        max_pending=settings.max_concurrent_checks,
        video_limits=video,
        video_weight=settings.video_weight,
    )


async def _serve(
    settings: Settings, pipeline: Pipeline, card: ModelCard, chat_settings: ChatSettings
) -> int:
    """Connect to Redis when ``REDIS_URL`` is set (unreachable: exit 2, the URL, which may hold
    a password, never printed), serve, close it last."""
    from bot.redis_client import RedisUnavailable, connect

    redis: SharedRedis | None = None
    if settings.redis_url is not None:
        try:
            redis = await connect(settings.redis_url, settings.redis_prefix)
        except RedisUnavailable as exc:
            sys.stderr.write(f"deepfake-bot run: {exc}\n")
            return 2
    _log_stores(settings, redis)
    try:
        return await _serve_with(settings, pipeline, card, chat_settings, redis)
    finally:
        if redis is not None:
            await redis.close()


def _log_stores(settings: Settings, redis: SharedRedis | None) -> None:
    if redis is not None:
        _log.info(
            "shared state in Redis (keys under %r): per-user rate limits, Telegram update "
            "de-duplication, Discord IDENTIFY turns and server settings",
            settings.redis_prefix,
        )
        return
    kept = settings.telegram_updates_file or "memory"
    _log.info("state kept by this process alone: rate limits in memory, answered Telegram "
              "updates in %s (set REDIS_URL to run several replicas)", kept)


async def _serve_with(
    settings: Settings,
    pipeline: Pipeline,
    card: ModelCard,
    chat_settings: ChatSettings,
    redis: SharedRedis | None,
) -> int:
    from bot.http_health import HealthServer
    from bot.runner import Service, build_checks, build_frontends, install_signal_handlers, serve
    from bot.web import Metrics, attach_web
    from detector.factory import close_scorer, scorer_labels
    from detector.service import DetectorService

    stop = asyncio.Event()
    install_signal_handlers(stop)
    lost: list[BaseException] = []

    def on_fatal(error: BaseException) -> None:  # a platform is gone for good: stop, exit 1
        lost.append(error)
        stop.set()

    detector = DetectorService(pipeline, service_options(settings))
    metrics = Metrics(
        model=scorer_labels(pipeline.classifier),
        batch_sizes=lambda: detector.stats.batch_sizes,
    )
    checks = build_checks(settings, detector, metrics, redis=redis)
    service = Service(
        build_frontends(settings, checks, card, chat_settings, on_fatal=on_fatal, redis=redis),
        checks,
        detector,
        grace_s=settings.shutdown_grace_s,
    )
    if settings.http_enabled and settings.web_enabled:
        attach_web(service, settings, card, metrics)  # the page, the API, /metrics, health
    elif settings.http_enabled:
        service.health = HealthServer(settings.http_host, settings.http_port, lambda: service.ready)
    try:
        await serve(service, stop)
    except Exception:
        _log.exception("the service stopped on an error")
        return 1
    finally:
        close_scorer(pipeline.classifier)
    return 1 if lost else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
