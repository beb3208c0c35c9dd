# deepfake-bot: both chat bots, the web page, HTTP API, /metrics and health endpoints in one
# process, CPU only (compose.yaml: the same with its data volume and .env).
#   docker build -t deepfake-bot .
#   docker run --env-file .env -p 8080:8080 deepfake-bot
# Build stage: a virtualenv with the CPU-only torch wheel (no CUDA: ~5 GB smaller) and the
# project installed from a wheel.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.14.1" "torchvision==0.29.1"
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY detector ./detector
# Optional extras of the serving install: `redis` (the default: several bot replicas or Discord
# shard processes with REDIS_URL) and `serve` (`deepfake-bot serve`, the detector on Ray Serve:
# --build-arg EXTRAS=redis,serve). Never train/dev. facenet-pytorch (the served MTCNN face
# finder) pins an old torch: installed without its pins; pyproject lists what it imports. The
# check builds the served finder from its weights.
ARG EXTRAS=redis
RUN pip install ".[${EXTRAS}]" && pip install --no-deps facenet-pytorch==2.6.0 \
    && python -c "import torch, dlib, redis, detector.service, bot.runner; assert not torch.cuda.is_available(); from detector.finders import make_finder; make_finder()"

# Runtime stage: the venv, the shipped weights and nothing else; runs as an unprivileged user.
FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEEPFAKE_BOT_WEIGHTS=/app/weights/deepfake-bot-xception.safetensors \
    CHAT_SETTINGS_FILE=/data/chat-settings.json \
    DISCORD_SETTINGS_DB=/data/discord.sqlite3 \
    TELEGRAM_UPDATES_FILE=/data/telegram-updates.json \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    MALLOC_ARENA_MAX=2
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin deepfake \
    && mkdir -p /app /data && chown deepfake:deepfake /data
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root weights /app/weights
COPY --chown=root:root samples /app/samples
WORKDIR /app
USER deepfake
VOLUME ["/data"]
EXPOSE 8080
# The page, the API, /metrics and the health endpoints on HTTP_PORT. /healthz answers while
# the process and its event loop are alive.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["deepfake-bot"]
CMD ["run"]
