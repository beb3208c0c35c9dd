"""The process's one logging setup: human-readable lines by default, JSON lines with
``LOG_FORMAT=json``; a request id on every line logged while a check runs; the runner adds
its secret redaction.

The request id lives in a context variable: set once per check (by the HTTP API per request, by
the check service for chat messages), it follows the check through ``await`` and into the
detector's worker threads (which run in a copy of the caller's context), so the detector's
lines about an image carry the id of the request that sent it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"


def new_request_id() -> str:
    """A short random id, unique enough to find one check's lines in a day of logs."""
    return secrets.token_hex(6)


@contextlib.contextmanager
def request_context(rid: str | None = None) -> Iterator[str]:
    """Run the body with ``rid`` (a new one when None) as the current request id."""
    rid = rid or new_request_id()
    token = request_id.set(rid)
    try:
        yield rid
    finally:
        request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (None outside a check) and ``request_tag`` (" [id]" or "")."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request_tag = f" [{rid}]" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id
    when set, and the traceback as ``exc`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def configure(
    level: str,
    fmt: LogFormat,
    filters: Sequence[logging.Filter] = (),
    quiet: Mapping[str, int] | None = None,
) -> None:
    """Replace the root logger's handlers with one stderr handler in format ``fmt`` with the
    request id and ``filters`` (the runner's secret redaction); loggers in ``quiet`` are held at
    their level or above (libraries that log URLs with tokens)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    for extra in filters:
        handler.addFilter(extra)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, min_level in (quiet or {}).items():
        logging.getLogger(name).setLevel(max(min_level, root.level))
