"""A Discord stand-in on ``127.0.0.1``: the REST API, the gateway websocket and the CDN, as far
as this project's bot uses them, speaking Discord's wire formats to the real discord.py.

- **Gateway** (``ws://127.0.0.1:<port>/``): HELLO, IDENTIFY → READY (+ GUILD_CREATE per guild of
  the shard), heartbeats, op 7 reconnect and RESUME with replay of the events sent meanwhile,
  zlib-stream compression as Discord sends it. Sessions are per shard; guilds go to shard
  ``(guild_id >> 22) % shard_count`` and direct messages to shard 0, as on Discord. Each
  IDENTIFY is recorded with its shard and arrival time (``identified_at``), so tests of several
  shard processes can check who identified which shard, and how far apart; ``hand_over`` moves
  a server to another shard's session (as when a shard changes process).
- **Intents**: IDENTIFY asking for the privileged Message Content intent is closed with 4014
  unless the application has it (``message_content_allowed``); message events are only sent to
  sessions subscribed to them, and server messages lose ``content``, ``attachments`` and
  ``embeds`` without the intent (except where Discord keeps them: mentions of the bot, the
  bot's own messages, direct messages, message-menu targets).
- **REST** (``/api/v10``): the calls the bot makes, with Discord's checks where they matter
  (the 3-second interaction deadline, one acknowledgement per interaction, follow-ups only after
  it, message and embed limits, ``attachment://`` references, upload size, reply targets),
  JSON answers with ``Content-Type: application/json``, and errors in Discord's shape. Unknown
  routes are 404 and recorded in ``unknown``.
- **CDN** (``/cdn/…`` and the media proxy ``/media/…``): attachment and embed bytes, optionally
  trickled slowly.

Test-side: builders for users, servers, channels, attachments and embeds; actions
(``user_sends``, ``slash``, ``menu``, ``request_reconnect``); ``fail_next`` for error injection
(a 429 carries ``Via`` and ``retry_after`` as Discord's does); ``wait_for`` on the call log.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import secrets
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image

from .common import InjectedFailures, LoopbackServer

API = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000

# Gateway intents (bits) and close codes.
GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 0, 1 << 9, 1 << 12, 1 << 15
CLOSE_AUTH_FAILED, CLOSE_DISALLOWED_INTENTS = 4004, 4014
# Application flags: the Message Content intent switched on in the Developer Portal.
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19

EPHEMERAL = 1 << 6
_TOKEN_ROUTES = ("POST /interactions", "POST /webhooks", "PATCH /webhooks")
INTERACTION_DEADLINE_S = 3.0
UPLOAD_LIMIT = 10 * 1024 * 1024
EMBED_LIMITS = {"title": 256, "description": 4096, "footer": 2048, "author": 256}

EVERYONE_PERMISSIONS = (
    (1 << 10)  # view channel
    | (1 << 11)  # send messages
    | (1 << 38)  # send messages in threads
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 6)  # add reactions
    | (1 << 31)  # use application commands
)
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3


_counter = itertools.count(1)


def new_id() -> int:
    """A realistic snowflake: milliseconds since Discord's epoch, shifted, plus a counter."""
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_counter) & 0x3FFFFF)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # Exactly "application/json": discord.py does not decode "application/json; charset=utf-8".
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def error(status: int, code: int, message: str, errors: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return json_response(body, status)


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


@dataclass
class Call:
    """One REST or CDN request the bot made."""

    route: str  # e.g. "POST /channels/{channel_id}/messages"
    params: dict[str, str]
    query: dict[str, str]
    body: Any = None  # JSON body, or the payload_json of a multipart body
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # field -> (name, bytes)
    at: float = field(default_factory=time.monotonic)
    status: int | None = None

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("embeds") or [])

    @property
    def content(self) -> str:
        return str((self.body or {}).get("content") or "")

    @property
    def reply_to(self) -> str | None:
        """The id of the message this one replies to (ids as strings, as in payloads)."""
        reference = (self.body or {}).get("message_reference")
        return None if reference is None else str(reference["message_id"])


@dataclass
class CdnObject:
    data: bytes
    content_type: str
    chunk_size: int = 64 * 1024
    chunk_delay_s: float = 0.0


@dataclass
class Interaction:
    """An interaction the stand-in dispatched, and how the bot answered it."""

    id: int
    token: str
    payload: dict[str, Any]
    dispatched_at: float
    callback: Call | None = None
    callback_type: int | None = None
    ephemeral: bool = False
    original: dict[str, Any] | None = None  # the response message (after a follow-up to a defer)
    followups: list[Call] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answers(self) -> list[Call]:
        """The callback (when it carried a message) and every follow-up, in order."""
        first = [self.callback] if self.callback is not None and self.callback_type == 4 else []
        return first + self.followups

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return [e for call in self.answers for e in call.embeds]

    @property
    def texts(self) -> str:
        parts = []
        for call in self.answers:
            body = call.body or {}
            if call is self.callback:
                body = body.get("data") or {}
            parts.append(str(body.get("content") or ""))
        return "\n".join(parts)


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    compressor: Any  # zlib compressobj or None

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload)
        if self.compressor is None:
            await self.ws.send_str(data)
        else:
            chunk = self.compressor.compress(data.encode()) + self.compressor.flush(
                zlib.Z_SYNC_FLUSH
            )
            await self.ws.send_bytes(chunk)


@dataclass
class Session:
    id: str
    shard: tuple[int, int]
    intents: int
    connection: _Connection | None
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    resumes: int = 0


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: float
    via: bool


class DiscordStandIn(LoopbackServer):
    def __init__(
        self,
        *,
        token: str = "MTIzNDU2Nzg5MDEyMzQ1Njc4.standin.discord-token_for-tests",
        message_content_allowed: bool = True,
        recommended_shards: int = 1,
        max_concurrency: int = 1,
        heartbeat_ms: int = 45_000,
    ) -> None:
        super().__init__()
        self.token = token
        self.app_id = new_id()
        self.bot_user: dict[str, Any] = {
            "id": str(self.app_id),
            "username": "Deepfake Check",
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "public_flags": 0,
            "flags": 0,
        }
        self.owner = self.user("owner")
        self.message_content_allowed = message_content_allowed
        self.recommended_shards = recommended_shards
        self.max_concurrency = max_concurrency
        self.heartbeat_ms = heartbeat_ms

        self.calls: list[Call] = []
        self.unknown: list[str] = []
        self.identifies: list[dict[str, Any]] = []
        self.identified_at: list[tuple[int, float]] = []  # (shard id, time.monotonic())
        self.handed_over: dict[int, int] = {}  # guild id -> the shard it was moved to
        self.closed_with: list[int] = []  # close codes the stand-in sent
        self.sessions: dict[str, Session] = {}
        self.shards: dict[int, Session] = {}  # shard id -> its current session
        self.guilds: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}  # full payloads, by id
        self.cdn: dict[str, CdnObject] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.reactions: list[tuple[int, int, str]] = []  # (channel, message, emoji)
        self.bot_permissions: dict[int, int] = {}  # guild -> the bot's permissions there
        self._failures: InjectedFailures[_Failure] = InjectedFailures()
        self._sockets: set[web.WebSocketResponse] = set()

    # --- server life cycle ------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.origin}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        app = self._new_app()
        app.router.add_get("/", self._gateway)
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/users/@me", self._users_me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("PUT", "/applications/{app_id}/commands", self._put_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._put_commands),
            ("POST", "/channels/{channel_id}/messages", self._create_message),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            (
                "PUT",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self._add_reaction,
            ),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("POST", "/webhooks/{app_id}/{token}", self._followup),
            ("PATCH", "/webhooks/{app_id}/{token}/messages/@original", self._edit_original),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API + path, self._wrap(f"{method} {path}", handler))
        app.router.add_get("/cdn/{path:.+}", self._cdn)
        app.router.add_get("/media/{path:.+}", self._cdn)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        await self._serve(app)

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001)
        await self._stop_serving()

    # --- builders ---------------------------------------------------------------------------------

    @staticmethod
    def user(name: str = "alice", *, bot: bool = False) -> dict[str, Any]:
        return {
            "id": str(new_id()),
            "username": name,
            "discriminator": "0",
            "global_name": name.title(),
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
            "flags": 0,
        }

    def add_guild(
        self,
        name: str = "Fact Checkers",
        *,
        channels: Iterable[str] = ("general", "images"),
        bot_permissions: int = EVERYONE_PERMISSIONS,
    ) -> dict[str, Any]:
        """A server the bot is in (sent in READY/GUILD_CREATE to its shard)."""
        guild_id = new_id()
        guild: dict[str, Any] = {
            "id": str(guild_id),
            "name": name,
            "icon": None,
            "owner_id": self.owner["id"],
            "unavailable": False,
            "member_count": 2,
            "large": False,
            "features": [],
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "afk_timeout": 300,
            "system_channel_id": None,
            "joined_at": _now(),
            "roles": [
                {
                    "id": str(guild_id),
                    "name": "@everyone",
                    "permissions": str(bot_permissions),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "stickers": [],
            "channels": [],
            "threads": [],
            "members": [
                {
                    "user": self.bot_user,
                    "roles": [],
                    "joined_at": _now(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
        for position, channel_name in enumerate(channels):
            channel = {
                "id": str(new_id()),
                "type": 0,
                "name": channel_name,
                "position": position,
                "guild_id": str(guild_id),
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
            }
            guild["channels"].append(channel)
            self.channels[int(channel["id"])] = channel
        self.guilds[guild_id] = guild
        self.bot_permissions[guild_id] = bot_permissions
        return guild

    def channel(self, guild: dict[str, Any], name: str) -> dict[str, Any]:
        return next(c for c in guild["channels"] if c["name"] == name)

    def dm_channel(self, user: dict[str, Any]) -> dict[str, Any]:
        channel = {"id": str(new_id()), "type": 1, "recipients": [user], "last_message_id": None}
        self.channels[int(channel["id"])] = channel
        return channel

    def shard_of(self, guild_id: int | None) -> int:
        count = self._shard_count()
        if guild_id in self.handed_over:
            return self.handed_over[guild_id]
        return 0 if guild_id is None else (guild_id >> 22) % count

    async def hand_over(self, guild: dict[str, Any], shard: int) -> None:
        """From now on ``guild`` lives on ``shard``: its session gets the GUILD_CREATE a shard
        gets for its servers when it connects (in a real deployment: the shard moved)."""
        self.handed_over[int(guild["id"])] = shard
        await self.dispatch(self.shards[shard], "GUILD_CREATE", guild)

    def store_cdn(
        self,
        data: bytes,
        name: str,
        content_type: str,
        *,
        prefix: str = "cdn",
        chunk_size: int = 64 * 1024,
        chunk_delay_s: float = 0.0,
    ) -> str:
        path = f"attachments/{new_id()}/{new_id()}/{name}"
        self.cdn[path] = CdnObject(data, content_type, chunk_size, chunk_delay_s)
        signature = secrets.token_hex(8)
        return f"{self.origin}/{prefix}/{path}?ex=68000000&is=67000000&hm={signature}&"

    def attachment(
        self,
        data: bytes,
        filename: str = "photo.jpg",
        content_type: str | None = "image/jpeg",
        *,
        size: int | None = None,
        chunk_size: int = 64 * 1024,
        chunk_delay_s: float = 0.0,
    ) -> dict[str, Any]:
        """An attachment payload, its bytes served by the CDN. ``size`` may differ from the
        bytes on purpose (what Discord declares)."""
        url = self.store_cdn(
            data,
            filename,
            content_type or "application/octet-stream",
            chunk_size=chunk_size,
            chunk_delay_s=chunk_delay_s,
        )
        payload: dict[str, Any] = {
            "id": str(new_id()),
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": url,
            "proxy_url": url.replace("/cdn/", "/media/"),
        }
        if content_type is not None:
            payload["content_type"] = content_type
        dims = _dimensions(data)
        if dims is not None:
            payload["width"], payload["height"] = dims
        return payload

    def image_embed(
        self, data: bytes, url: str = "https://images.example.org/portrait.jpg"
    ) -> dict[str, Any]:
        """A link preview of a bare image link (Discord shows it as the thumbnail), fetched
        through the media proxy."""
        proxy = self.store_cdn(
            data, url.rsplit("/", 1)[-1] or "image", "image/jpeg", prefix="media"
        )
        thumb: dict[str, Any] = {"url": url, "proxy_url": proxy}
        dims = _dimensions(data)
        if dims is not None:
            thumb["width"], thumb["height"] = dims
        return {"type": "image", "url": url, "thumbnail": thumb}

    def message(
        self,
        channel: dict[str, Any],
        author: dict[str, Any],
        content: str = "",
        *,
        attachments: Iterable[dict[str, Any]] = (),
        embeds: Iterable[dict[str, Any]] = (),
        mentions: Iterable[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(new_id()),
            "channel_id": channel["id"],
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": list(mentions),
            "mention_roles": [],
            "attachments": list(attachments),
            "embeds": list(embeds),
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }
        if "guild_id" in channel:
            payload["guild_id"] = channel["guild_id"]
        self.messages[int(payload["id"])] = payload
        return payload

    # --- actions ----------------------------------------------------------------------------------

    async def user_sends(
        self, channel: dict[str, Any], author: dict[str, Any], content: str = "", **kw: Any
    ) -> dict[str, Any]:
        """``author`` posts a message: MESSAGE_CREATE to the subscribed session of its shard."""
        message = self.message(channel, author, content, **kw)
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        session = self.shards.get(self.shard_of(guild_id))
        if session is None:
            raise AssertionError("no gateway session for this shard")
        needed = GUILD_MESSAGES if guild_id is not None else DIRECT_MESSAGES
        if not session.intents & needed:
            return message  # not subscribed: Discord sends nothing
        data = dict(message)
        if guild_id is not None:
            data["member"] = {
                "roles": [],
                "joined_at": _now(),
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
            if not self._sees_content(session, message):
                data.update(content="", attachments=[], embeds=[], components=[])
        await self.dispatch(session, "MESSAGE_CREATE", data)
        return message

    def _sees_content(self, session: Session, message: dict[str, Any]) -> bool:
        if session.intents & MESSAGE_CONTENT:
            return True
        if message["author"]["id"] == self.bot_user["id"]:
            return True
        return any(m["id"] == self.bot_user["id"] for m in message["mentions"])

    async def slash(
        self,
        user: dict[str, Any],
        channel: dict[str, Any],
        name: str,
        options: list[dict[str, Any]] | None = None,
        *,
        resolved: dict[str, Any] | None = None,
        member_permissions: int = EVERYONE_PERMISSIONS,
    ) -> Interaction:
        """A chat-input command, as Discord delivers it: ``name`` may be "group sub"."""
        parts = name.split()
        command = self._registered(channel, parts[0], 1)
        data: dict[str, Any] = {"id": command["id"], "name": parts[0], "type": 1}
        opts = list(options or [])
        if len(parts) > 1:
            opts = [{"name": parts[1], "type": 1, "options": opts}]
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        return await self._interact(user, channel, data, member_permissions)

    async def check(
        self,
        user: dict[str, Any],
        channel: dict[str, Any],
        *,
        image: dict[str, Any] | None = None,
        url: str | None = None,
    ) -> Interaction:
        """``/check`` with an attachment (option type 11) and/or a link."""
        options: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        if image is not None:
            options.append({"name": "image", "type": 11, "value": image["id"]})
            resolved["attachments"] = {image["id"]: image}
        if url is not None:
            options.append({"name": "url", "type": 3, "value": url})
        return await self.slash(user, channel, "check", options, resolved=resolved or None)

    async def menu(
        self, user: dict[str, Any], channel: dict[str, Any], message: dict[str, Any]
    ) -> Interaction:
        """The message context menu on ``message`` (its full content: Discord resolves targets
        of message commands whatever the intents)."""
        command = self._registered(channel, "Check for deepfake", 3)
        data = {
            "id": command["id"],
            "name": command["name"],
            "type": 3,
            "target_id": message["id"],
            "resolved": {"messages": {message["id"]: message}},
        }
        return await self._interact(user, channel, data, EVERYONE_PERMISSIONS)

    def _registered(self, channel: dict[str, Any], name: str, kind: int) -> dict[str, Any]:
        candidates = list(self.global_commands)
        if "guild_id" in channel:
            candidates = self.guild_commands.get(int(channel["guild_id"]), []) + candidates
        for command in candidates:
            if command["name"] == name and command.get("type", 1) == kind:
                return command
        raise AssertionError(f"command {name!r} (type {kind}) was never registered")

    async def _interact(
        self, user: dict[str, Any], channel: dict[str, Any], data: dict[str, Any], permissions: int
    ) -> Interaction:
        interaction_id = new_id()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.app_id),
            "type": 2,
            "data": data,
            "channel_id": channel["id"],
            "channel": channel,
            "token": token,
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": UPLOAD_LIMIT,
            "authorizing_integration_owners": {"0": channel.get("guild_id", "0")},
        }
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
            payload["context"] = 0
            payload["app_permissions"] = str(self.bot_permissions[guild_id])
            payload["member"] = {
                "user": user,
                "roles": [],
                "joined_at": _now(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": str(permissions),
            }
        else:
            payload["user"] = user
            payload["context"] = 1
            payload["app_permissions"] = str(EVERYONE_PERMISSIONS)
        interaction = Interaction(interaction_id, token, payload, time.monotonic())
        self.interactions[interaction_id] = interaction
        session = self.shards.get(self.shard_of(guild_id))
        if session is None:
            raise AssertionError("no gateway session for this shard")
        await self.dispatch(session, "INTERACTION_CREATE", payload)
        return interaction

    async def dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        """Send (or, while the session is disconnected, keep for RESUME) one event."""
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.log.append(payload)
        if session.connection is not None:
            await session.connection.send(payload)

    async def request_reconnect(self, shard: int = 0) -> Session:
        """Op 7: the client must reconnect and RESUME; events dispatched until it has are
        kept and replayed then."""
        session = self.shards[shard]
        connection, session.connection = session.connection, None
        assert connection is not None
        await connection.send({"op": 7, "d": None, "s": None, "t": None})
        return session

    async def end_session(self, shard: int = 0, code: int = CLOSE_AUTH_FAILED) -> None:
        """Close the shard's connection with ``code`` (4004: the token was reset; not
        resumable)."""
        session = self.shards[shard]
        connection, session.connection = session.connection, None
        assert connection is not None
        self.closed_with.append(code)
        await connection.ws.close(code=code, message=b"Authentication failed.")

    def fail_next(
        self, route: str, status: int, *, times: int = 1, retry_after: float = 0.3, via: bool = True
    ) -> None:
        """The next ``times`` calls of ``route`` (e.g. ``"POST /channels/{channel_id}/messages"``)
        fail with ``status``; a 429 says ``retry_after`` and carries ``Via`` unless ``via=False``
        (which discord.py takes for a Cloudflare ban)."""
        self._failures.add(route, _Failure(status, times, retry_after, via))

    # --- observing --------------------------------------------------------------------------------

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]

    async def wait_for(
        self,
        route: str,
        *,
        count: int = 1,
        where: Callable[[Call], bool] | None = None,
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper's deadline
    ) -> Call:
        """The ``count``-th answered call to ``route`` matching ``where``."""

        def probe() -> Call | None:
            found = [
                c
                for c in self.calls_to(route)
                if c.status is not None and (where is None or where(c))
            ]
            return found[count - 1] if len(found) >= count else None

        def failure() -> str:
            seen = sorted({c.route for c in self.calls})
            return f"no {count} call(s) to {route} within {timeout} s; seen: {seen}"

        return await self._poll(probe, timeout, failure)

    async def wait_until(
        self,
        condition: Callable[[], bool],
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper's deadline
    ) -> None:
        """Until ``condition()`` holds (re-checked on every call the stand-in answers, and at
        least twice a second for conditions on the bot's side)."""
        await self._poll(
            lambda: True if condition() else None,
            timeout,
            lambda: "condition not met in time",
            every=0.5,
        )

    async def answered(
        self,
        interaction: Interaction,
        followups: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper's deadline
    ) -> Interaction:
        """Wait until ``interaction`` has a callback and ``followups`` follow-ups."""
        await self.wait_until(
            lambda: interaction.callback is not None and len(interaction.followups) >= followups,
            timeout,
        )
        return interaction

    def sent_to(self, channel: dict[str, Any]) -> list[Call]:
        return [
            c
            for c in self.calls_to("POST /channels/{channel_id}/messages")
            if c.params["channel_id"] == channel["id"] and c.status == 200
        ]

    def _touch(self) -> None:
        self._changed.set()

    # --- gateway ----------------------------------------------------------------------------------

    def _shard_count(self) -> int:
        for session in self.shards.values():
            return session.shard[1]
        return 1

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        if not ws.can_prepare(request).ok:
            return await self._not_found(request)
        await ws.prepare(request)
        self._sockets.add(ws)
        compressor = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        connection = _Connection(ws, compressor)
        await connection.send(
            {"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}, "s": None, "t": None}
        )
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op = payload.get("op")
                if op == 1:
                    await connection.send({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._identify(connection, payload["d"])
                elif op == 6:
                    await self._resume(connection, payload["d"])
        finally:
            self._sockets.discard(ws)
            for session in self.sessions.values():
                if session.connection is connection:
                    session.connection = None
            self._touch()
        return ws

    async def _identify(self, connection: _Connection, d: dict[str, Any]) -> None:
        self.identifies.append(d)
        self.identified_at.append(((d.get("shard") or [0, 1])[0], time.monotonic()))
        self._touch()
        if d.get("token") != self.token:
            self.closed_with.append(CLOSE_AUTH_FAILED)
            await connection.ws.close(code=CLOSE_AUTH_FAILED, message=b"Authentication failed.")
            return
        intents = int(d.get("intents", 0))
        if intents & MESSAGE_CONTENT and not self.message_content_allowed:
            self.closed_with.append(CLOSE_DISALLOWED_INTENTS)
            await connection.ws.close(
                code=CLOSE_DISALLOWED_INTENTS, message=b"Disallowed intent(s)."
            )
            return
        shard_id, shard_count = d.get("shard") or [0, 1]
        session = Session(secrets.token_hex(16), (shard_id, shard_count), intents, connection)
        self.sessions[session.id] = session
        self.shards[shard_id] = session
        guilds = [g for gid, g in self.guilds.items() if (gid >> 22) % shard_count == shard_id]
        await self.dispatch(
            session,
            "READY",
            {
                "v": 10,
                "user": self.bot_user,
                "session_id": session.id,
                "resume_gateway_url": self.gateway_url,
                "guilds": [{"id": g["id"], "unavailable": True} for g in guilds],
                "application": {"id": str(self.app_id), "flags": self._app_flags()},
                "shard": [shard_id, shard_count],
                "private_channels": [],
                "relationships": [],
                "user_settings": {},
            },
        )
        for guild in guilds:
            await self.dispatch(session, "GUILD_CREATE", guild)

    async def _resume(self, connection: _Connection, d: dict[str, Any]) -> None:
        session = self.sessions.get(d.get("session_id", ""))
        if session is None or d.get("token") != self.token:
            await connection.send({"op": 9, "d": False, "s": None, "t": None})
            return
        session.connection = connection
        session.resumes += 1
        last = int(d.get("seq") or 0)
        for payload in [p for p in session.log if p["s"] > last]:
            await connection.send(payload)
        await self.dispatch(session, "RESUMED", {})
        self._touch()

    def _app_flags(self) -> int:
        return GATEWAY_MESSAGE_CONTENT_LIMITED if self.message_content_allowed else 0

    # --- REST -------------------------------------------------------------------------------------

    def _wrap(self, route: str, handler: Callable[..., Any]) -> Callable[[web.Request], Any]:
        async def run(request: web.Request) -> web.StreamResponse:
            call = Call(route, dict(request.match_info), dict(request.query))
            self.calls.append(call)
            try:
                call.body, call.files = await _read_body(request)
                # Interaction callbacks and follow-ups are authorised by the interaction token.
                by_token = route.startswith(_TOKEN_ROUTES)
                if not by_token and request.headers.get("Authorization") != f"Bot {self.token}":
                    raise _Refused(error(401, 0, "401: Unauthorized"))
                failure = self._take_failure(route)
                if failure is not None:
                    raise _Refused(failure)
                response: web.Response = await handler(call, request)
            except _Refused as refused:
                response = refused.response
            call.status = response.status
            self._touch()
            return response

        return run

    def _take_failure(self, route: str) -> web.Response | None:
        failure = self._failures.take(route)
        if failure is None:
            return None
        if failure.status == 429:
            headers = {
                "Retry-After": str(max(1, round(failure.retry_after))),
                "X-RateLimit-Scope": "user",
            }
            if failure.via:
                headers["Via"] = "1.1 google"
            body = {
                "message": "You are being rate limited.",
                "retry_after": failure.retry_after,
                "global": False,
            }
            return json_response(body, 429, headers)
        return error(failure.status, 0, f"{failure.status}: injected failure")

    async def _not_found(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path}")
        self._touch()
        return error(404, 0, "404: Not Found")

    async def _users_me(self, call: Call, request: web.Request) -> web.Response:
        return json_response(self.bot_user)

    async def _application(self, call: Call, request: web.Request) -> web.Response:
        return json_response(
            {
                "id": str(self.app_id),
                "name": "Deepfake Check",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": secrets.token_hex(32),
                "owner": self.owner,
                "team": None,
                "flags": self._app_flags(),
                "bot": self.bot_user,
                "summary": "",
                "rpc_origins": [],
                "interactions_endpoint_url": None,
            }
        )

    async def _get_gateway(self, call: Call, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, call: Call, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self.gateway_url,
                "shards": self.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": self.max_concurrency,
                },
            }
        )

    async def _put_commands(self, call: Call, request: web.Request) -> web.Response:
        if call.params["app_id"] != str(self.app_id):
            raise _Refused(error(404, 10002, "Unknown Application"))
        commands = []
        for command in call.body:
            problem = _command_problem(command)
            if problem:
                raise _Refused(error(400, 50035, "Invalid Form Body", {"commands": problem}))
            defaults = {
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                "name_localizations": None,
                "description_localizations": None,
            }
            commands.append(
                {
                    **defaults,
                    **command,
                    "id": str(new_id()),
                    "application_id": str(self.app_id),
                    "version": str(new_id()),
                }
            )
        if "guild_id" in call.params:
            self.guild_commands[int(call.params["guild_id"])] = commands
        else:
            self.global_commands = commands
        return json_response(commands)

    async def _typing(self, call: Call, request: web.Request) -> web.Response:
        self._known_channel(call)
        return web.Response(status=204)

    async def _add_reaction(self, call: Call, request: web.Request) -> web.Response:
        channel_id = self._known_channel(call)
        message_id = int(call.params["message_id"])
        if message_id not in self.messages:
            raise _Refused(error(404, 10008, "Unknown Message"))
        self.reactions.append((channel_id, message_id, call.params["emoji"]))
        return web.Response(status=204)

    async def _create_message(self, call: Call, request: web.Request) -> web.Response:
        channel_id = self._known_channel(call)
        channel = self.channels[channel_id]
        body = call.body or {}
        reference = body.get("message_reference")
        if reference is not None:
            target = self.messages.get(int(reference["message_id"]))
            if (target is None or target["channel_id"] != str(channel_id)) and reference.get(
                "fail_if_not_exists", True
            ):
                raise _Refused(
                    error(400, 50035, "Invalid Form Body", {"message_reference": "Unknown message"})
                )
        message = self._message_from(body, call, channel)
        if reference is not None:
            message["message_reference"] = {**reference, "type": 0}
            message["type"] = 19
        self.messages[int(message["id"])] = message
        return json_response(message)

    async def _callback(self, call: Call, request: web.Request) -> web.Response:
        interaction = self.interactions.get(int(call.params["interaction_id"]))
        if interaction is None or interaction.token != call.params["token"]:
            raise _Refused(error(404, 10062, "Unknown interaction"))
        if interaction.callback is not None:
            raise _Refused(error(400, 40060, "Interaction has already been acknowledged."))
        if time.monotonic() - interaction.dispatched_at > INTERACTION_DEADLINE_S:
            raise _Refused(error(404, 10062, "Unknown interaction"))
        body = call.body or {}
        kind = body.get("type")
        data = body.get("data") or {}
        if kind not in {4, 5}:
            raise _Refused(error(400, 50035, "Invalid Form Body", {"type": "unsupported here"}))
        interaction.callback, interaction.callback_type = call, kind
        interaction.ephemeral = bool(int(data.get("flags") or 0) & EPHEMERAL)
        resource: dict[str, Any] = {"type": kind}
        channel = self.channels.get(
            int(interaction.payload["channel_id"]), {"id": interaction.payload["channel_id"]}
        )
        if kind == 4:
            message = self._message_from(data, call, channel, interaction=interaction)
            interaction.original = message
            interaction.messages.append(message)
            resource["message"] = message
        if call.query.get("with_response") not in {"1", "true", "True"}:
            return web.Response(status=204)
        answer = {
            "interaction": {
                "id": str(interaction.id),
                "type": 2,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": interaction.ephemeral,
            },
            "resource": resource,
        }
        if kind == 4:
            answer["interaction"]["response_message_id"] = resource["message"]["id"]
        return json_response(answer)

    def _interaction_for(self, call: Call) -> Interaction:
        if call.params["app_id"] != str(self.app_id):
            raise _Refused(error(404, 10015, "Unknown Webhook"))
        for interaction in self.interactions.values():
            if interaction.token == call.params["token"]:
                if interaction.callback is None:  # follow-ups need an acknowledged interaction
                    raise _Refused(error(404, 10015, "Unknown Webhook"))
                return interaction
        raise _Refused(error(404, 10015, "Unknown Webhook"))

    async def _followup(self, call: Call, request: web.Request) -> web.Response:
        interaction = self._interaction_for(call)
        body = call.body or {}
        channel = self.channels.get(
            int(interaction.payload["channel_id"]), {"id": interaction.payload["channel_id"]}
        )
        message = self._message_from(body, call, channel, interaction=interaction)
        first_after_defer = interaction.callback_type == 5 and interaction.original is None
        if first_after_defer:  # replaces "… is thinking"; keeps the defer's visibility
            interaction.original = message
            if interaction.ephemeral:
                message["flags"] |= EPHEMERAL
        elif int(body.get("flags") or 0) & EPHEMERAL:
            message["flags"] |= EPHEMERAL
        interaction.followups.append(call)
        interaction.messages.append(message)
        if call.query.get("wait") in {"1", "true", "True"}:
            return json_response(message)
        return web.Response(status=204)

    async def _edit_original(self, call: Call, request: web.Request) -> web.Response:
        interaction = self._interaction_for(call)
        if interaction.original is None:
            raise _Refused(error(404, 10008, "Unknown Message"))
        interaction.original.update(
            {k: v for k, v in (call.body or {}).items() if k in {"content", "embeds"}}
        )
        return json_response(interaction.original)

    def _known_channel(self, call: Call) -> int:
        channel_id = int(call.params["channel_id"])
        if channel_id not in self.channels:
            raise _Refused(error(404, 10003, "Unknown Channel"))
        return channel_id

    def _message_from(
        self,
        body: dict[str, Any],
        call: Call,
        channel: dict[str, Any],
        *,
        interaction: Interaction | None = None,
    ) -> dict[str, Any]:
        """A message the bot sends, checked against Discord's rules."""
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        uploads = [(name, data) for name, data in call.files.values()]
        if not content and not embeds and not uploads:
            raise _Refused(error(400, 50006, "Cannot send an empty message"))
        if len(content) > 2000:
            raise _Refused(
                error(
                    400, 50035, "Invalid Form Body", {"content": "Must be 2000 or fewer in length."}
                )
            )
        _check_embeds(embeds, {name for name, _ in uploads})
        if len(uploads) > 10:
            raise _Refused(error(400, 50035, "Invalid Form Body", {"files": "at most 10"}))
        if sum(len(data) for _, data in uploads) > UPLOAD_LIMIT:
            raise _Refused(error(413, 40005, "Request entity too large"))
        attachments = []
        for name, data in uploads:
            url = self.store_cdn(
                data, name, "image/jpeg" if name.endswith(".jpg") else "application/octet-stream"
            )
            attachments.append(
                {
                    "id": str(new_id()),
                    "filename": name,
                    "size": len(data),
                    "url": url,
                    "proxy_url": url,
                }
            )
        message = self.message(
            channel, self.bot_user, content, attachments=attachments, embeds=embeds
        )
        if interaction is not None:
            message["webhook_id"] = str(self.app_id)
            message["application_id"] = str(self.app_id)
            message["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": 2,
                "user": interaction.payload.get("member", {}).get("user")
                or interaction.payload.get("user"),
                "authorizing_integration_owners": {},
            }
        flags = int(body.get("flags") or 0)
        message["flags"] = flags & EPHEMERAL
        return message

    # --- CDN --------------------------------------------------------------------------------------

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        call = Call("GET /cdn", {"path": request.match_info["path"]}, dict(request.query))
        self.calls.append(call)
        obj = self.cdn.get(request.match_info["path"])
        if obj is None:
            call.status = 404
            self._touch()
            return web.Response(status=404, text="Not Found")
        response = web.StreamResponse(headers={"Content-Type": obj.content_type})
        response.content_length = len(obj.data)
        await response.prepare(request)
        for start in range(0, len(obj.data), obj.chunk_size):
            await response.write(obj.data[start : start + obj.chunk_size])
            if obj.chunk_delay_s:
                await asyncio.sleep(obj.chunk_delay_s)
        await response.write_eof()
        call.status = 200
        self._touch()
        return response


def _command_problem(command: dict[str, Any]) -> str | None:
    """Discord's naming rules: chat-input commands and options lower-case ``[-_a-z0-9]``
    (1-32) with a 1-100 character description; menu commands 1-32 characters, no description."""
    kind = command.get("type", 1)
    name = command.get("name", "")
    if kind == 1:
        if not re.fullmatch(r"[-_a-z0-9]{1,32}", name):
            return f"bad command name {name!r}"
        if not 1 <= len(command.get("description", "")) <= 100:
            return f"bad description for {name!r}"
        for option in command.get("options", []):
            problem = _command_problem({**option, "type": 1})
            if problem:
                return problem
    elif not 1 <= len(name) <= 32 or command.get("description"):
        return f"bad menu command {name!r}"
    return None


def _dimensions(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


def _check_embeds(embeds: list[dict[str, Any]], uploaded: set[str]) -> None:
    if len(embeds) > 10:
        raise _Refused(error(400, 50035, "Invalid Form Body", {"embeds": "at most 10"}))
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            value = embed.get(key)
            text = value.get("text") or value.get("name") if isinstance(value, dict) else value
            if text and len(text) > limit:
                raise _Refused(
                    error(400, 50035, "Invalid Form Body", {f"embeds.{i}.{key}": "too long"})
                )
            total += len(text or "")
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise _Refused(
                error(400, 50035, "Invalid Form Body", {f"embeds.{i}.fields": "at most 25"})
            )
        for f in fields:
            if (
                not f.get("name")
                or not f.get("value")
                or len(f["name"]) > 256
                or len(f["value"]) > 1024
            ):
                raise _Refused(
                    error(400, 50035, "Invalid Form Body", {f"embeds.{i}.fields": "bad field"})
                )
            total += len(f["name"]) + len(f["value"])
        image_url = (embed.get("image") or {}).get("url", "")
        if (
            image_url.startswith("attachment://")
            and image_url[len("attachment://") :] not in uploaded
        ):
            raise _Refused(
                error(400, 50035, "Invalid Form Body", {f"embeds.{i}.image": "no such attachment"})
            )
    if total > 6000:
        raise _Refused(
            error(400, 50035, "Invalid Form Body", {"embeds": "more than 6000 characters"})
        )


async def _read_body(request: web.Request) -> tuple[Any, dict[str, tuple[str, bytes]]]:
    if not request.can_read_body:
        return None, {}
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/"):
        body: Any = None
        files: dict[str, tuple[str, bytes]] = {}
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())  # type: ignore[union-attr]
            elif part.name is not None:
                files[part.name] = (part.filename or part.name, bytes(await part.read()))  # type: ignore[union-attr]
        return body, files
    raw = await request.read()
    if not raw:
        return None, {}
    if content_type != "application/json":
        raise _Refused(error(400, 50109, "The request body contains invalid JSON."))
    return json.loads(raw), {}
