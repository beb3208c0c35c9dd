"""The one way the bots open Redis (``REDIS_URL``): redis-py's asyncio client, imported only when
a deployment asks for it so single-process installs do not need the ``[redis]`` extra.

Every key a deployment writes starts with ``REDIS_PREFIX``; :class:`SharedRedis` carries the
client and the prefix together so no store forgets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from redis.asyncio import Redis


class RedisUnavailable(RuntimeError):
    """REDIS_URL is set but the client library is missing or the server cannot be reached."""


@dataclass(frozen=True)
class SharedRedis:
    client: Redis
    prefix: str

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    async def close(self) -> None:
        await self.client.aclose()


# Redis answers in well under a millisecond; a command that takes a second means it hangs. The
# bots then carry on without it (fail open), and a Discord interaction still gets its answer
# within the 3 s Discord allows (a 5 s timeout made a hung Redis cost the admin the reply).
COMMAND_TIMEOUT_S = 1.0


async def connect(
    url: SecretStr, prefix: str, *, timeout_s: float = COMMAND_TIMEOUT_S
) -> SharedRedis:
    """A connected client (one PING answered within ``timeout_s``; every later command and
    reconnection bounded by it too), or :class:`RedisUnavailable` with a message that names the
    fix (never the URL, which may hold a password)."""
    try:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError
    except ImportError:
        raise RedisUnavailable(
            "REDIS_URL is set but redis-py is not installed: pip install 'deepfake-bot[redis]'"
        ) from None
    client = Redis.from_url(
        url.get_secret_value(), socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise RedisUnavailable(f"cannot reach Redis at REDIS_URL: {type(exc).__name__}") from None
    return SharedRedis(client, prefix)
