"""``DiscordBot``: builds the discord.py client around the core and owns its life cycle.

Start-up: apply the endpoint settings, open the per-server settings store, log in, register
(sync) the application commands, connect to the gateway and wait until ready. The client is a
plain :class:`discord.Client` (one gateway connection) or, with ``DISCORD_SHARD_COUNT``, an
:class:`discord.AutoShardedClient` (Discord's recommended shard count, or a fixed count and
this process's share of the shards); nothing here assumes a single shard. With a shared Redis
(``REDIS_URL``) the shard processes of one bot take turns to IDENTIFY (:mod:`.identify`) and
keep the per-server settings in Redis (:mod:`.redis_store`) instead of a per-process SQLite file.

The Message Content intent (privileged) is requested unless ``DISCORD_MESSAGE_CONTENT=false``.
When Discord refuses it (gateway close code 4014: not enabled in the Developer Portal), the bot
says so in its log, connects again without it and tells server admins in ``/deepfake`` answers:
commands keep working, auto-scan cannot see images until the intent is enabled.

Stopping is two-step so that the runner can stop intake on every platform before draining:
``stop_intake`` (new interactions are told the bot is restarting, new messages are ignored)
then ``finish`` (interactions and messages being answered get their answers, then the gateway
and HTTP sessions close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import discord
import yarl
from discord import app_commands

from bot.core import CheckService, ModelCard
from bot.core.urlfetch import UrlFetcher
from bot.discord_bot import texts
from bot.discord_bot.checking import Checker
from bot.discord_bot.commands import Handlers, IntentState, build_commands
from bot.discord_bot.identify import IdentifyLock, PacedShardedClient
from bot.discord_bot.listener import Listener
from bot.discord_bot.media import CdnDownloads, Media
from bot.discord_bot.redis_store import RedisGuildSettingsStore
from bot.discord_bot.store import GuildSettingsStore, SettingsStore
from bot.redis_client import SharedRedis
from bot.settings import Settings

_log = logging.getLogger(__name__)


def use_endpoints(settings: Settings) -> None:
    """Point discord.py at ``DISCORD_API_URL`` and ``DISCORD_GATEWAY_URL``. They are class
    attributes in discord.py, so this is process-wide (one Discord bot per process)."""
    discord.http.Route.BASE = settings.discord_api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def intents_for(message_content: bool) -> discord.Intents:
    """Only the events the bot uses: servers and channels (for interactions and permissions),
    direct messages, and server messages only when their content is visible (without the
    Message Content intent they carry no attachments, so subscribing would be wasted traffic)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.dm_messages = True
    intents.guild_messages = message_content
    intents.message_content = message_content
    return intents


class DiscordBot:
    name = "discord"

    def __init__(
        self,
        settings: Settings,
        checks: CheckService,
        card: ModelCard,
        *,
        store: SettingsStore | None = None,
        url_fetcher: UrlFetcher | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        redis: SharedRedis | None = None,
    ) -> None:
        if settings.discord_token is None:
            raise ValueError("DISCORD_TOKEN is not set")
        self.settings = settings
        self.checks = checks
        self.redis = redis
        if store is None:
            store = (
                GuildSettingsStore(settings.discord_settings_db)
                if redis is None
                else RedisGuildSettingsStore(redis)
            )
        self.store: SettingsStore = store
        limits = checks.limits
        self.links = url_fetcher or UrlFetcher(
            max_bytes=limits.max_image_bytes, timeout_s=limits.download_timeout_s
        )
        most = max(limits.max_image_bytes, limits.max_video_bytes if limits.videos else 0)
        self.cdn = CdnDownloads(most)
        self.media = Media(self.cdn, self.links, videos=limits.videos)
        wanted = settings.discord_message_content
        self.intents = IntentState(requested=wanted, granted=wanted)
        self.checker = Checker(
            checks, self.store, self.media, card, max_images=settings.discord_max_images
        )
        self.handlers = Handlers(
            self.checker,
            self.media,
            self.store,
            self.intents,
            url_checks=settings.discord_url_checks,
            about=texts.about_text(card, limits, checks.rate_limiter.limit),
        )
        self.listener = Listener(self.checker, self.store)
        self.client: discord.Client | None = None
        self.tree: app_commands.CommandTree[discord.Client] | None = None
        self.running = False
        self._connection: asyncio.Task[None] | None = None
        self._stopping = False
        self._on_fatal = on_fatal

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, sync commands, connect; returns once the gateway is ready. Raises
        ``discord.LoginFailure`` for a rejected token and ``TimeoutError`` when the gateway is
        not ready within ``DISCORD_CONNECT_TIMEOUT_S``."""
        use_endpoints(self.settings)
        try:
            await self.store.open()
            if not self.intents.requested:
                _log.warning(texts.INTENT_OFF_LOG)
            await self._connect(sync=self.settings.discord_sync_commands)
        except BaseException:
            await self.stop_intake()
            await self.finish()
            raise
        self.running = True
        client = self.client
        assert client is not None and client.user is not None
        _log.info(
            "Discord bot %s running in %d server(s), %d shard(s), message content %s",
            client.user,
            len(client.guilds),
            client.shard_count or 1,
            "on" if self.intents.granted else "OFF",
        )

    def _build_client(self) -> tuple[discord.Client, app_commands.CommandTree[discord.Client]]:
        s = self.settings
        options: dict[str, Any] = {
            "intents": intents_for(self.intents.granted),
            "max_messages": None,  # no message cache: the bot never looks back at messages
            "chunk_guilds_at_startup": False,
            "member_cache_flags": discord.MemberCacheFlags.none(),
            "allowed_mentions": discord.AllowedMentions.none(),
            "guild_ready_timeout": s.discord_guild_ready_timeout_s,
            "max_ratelimit_timeout": s.discord_max_ratelimit_wait_s,
        }
        # The bot never uses voice: no warnings about voice libraries it does not need.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        client: discord.Client
        if s.discord_shard_count is None:
            client = discord.Client(**options)
        elif s.discord_shard_count == "auto":
            client = discord.AutoShardedClient(**options)
        else:
            if s.discord_shard_ids is not None:  # this process runs only these shards
                options["shard_ids"] = s.discord_shard_ids
            options["shard_count"] = s.discord_shard_count
            if self.redis is None:  # one process: discord.py paces its own IDENTIFYs
                client = discord.AutoShardedClient(**options)
            else:
                lock = IdentifyLock(self.redis, interval_s=s.discord_identify_interval_s)
                client = PacedShardedClient(
                    identify_lock=lock, concurrency=s.discord_identify_concurrency, **options
                )
        tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
        for command in build_commands(self.handlers):
            tree.add_command(command)
        tree.error(self.handlers.on_error)
        client.event(self.listener.on_message)
        client.event(self.listener.on_guild_available)
        client.event(self.listener.on_guild_remove)
        client.event(self.listener.on_guild_channel_delete)
        return client, tree

    async def _connect(self, *, sync: bool) -> None:
        token = self.settings.discord_token
        assert token is not None
        client, tree = self._build_client()
        self.client, self.tree = client, tree
        await client.login(token.get_secret_value())
        if sync:
            await self._sync(tree)
        connection = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready(), name="discord-ready")
        try:
            done, _ = await asyncio.wait(
                {connection, ready},
                timeout=self.settings.discord_connect_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
        if connection not in done and ready in done:
            self._connection = connection
            connection.add_done_callback(self._connection_ended)
            return
        if connection not in done:  # timed out
            await client.close()
            connection.cancel()
            with contextlib.suppress(BaseException):
                await connection
            raise TimeoutError(
                "the Discord gateway was not ready within "
                f"{self.settings.discord_connect_timeout_s:.0f} s"
            )
        error = connection.exception()
        await client.close()
        if isinstance(error, discord.PrivilegedIntentsRequired) and self.intents.granted:
            _log.warning(texts.INTENT_LOG)
            self.intents.granted = False
            await self._connect(sync=False)
            return
        raise error or RuntimeError("the Discord gateway closed the connection at start-up")

    async def _sync(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        """Register the commands: in ``DISCORD_TEST_GUILD`` (instant) or globally."""
        guild_id = self.settings.discord_test_guild
        try:
            if guild_id is not None:
                guild = discord.Object(id=guild_id)
                tree.copy_global_to(guild=guild)
                synced = await tree.sync(guild=guild)
            else:
                synced = await tree.sync()
        except discord.HTTPException as exc:  # the commands registered before keep working
            _log.warning("could not register the application commands: %s", exc)
            return
        where = f"in the test server {guild_id}" if guild_id is not None else "globally"
        _log.info("registered %d application commands %s", len(synced), where)

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        error = task.exception()
        self.running = False
        if isinstance(error, discord.PrivilegedIntentsRequired):
            # Only checked when (re)identifying: the intent was switched off while running.
            # A restart connects without it (and says so).
            _log.error("Discord refused the Message Content intent while running")
        _log.error("the Discord gateway connection ended (%r): the Discord bot is offline", error)
        if self._on_fatal is not None:
            self._on_fatal(error or RuntimeError("Discord gateway connection closed"))

    async def stop_intake(self) -> None:
        """New interactions are answered "restarting", new messages are ignored."""
        self.running = False
        self.checker.accepting = False

    async def finish(self) -> None:
        """Answer what is being answered, then close the gateway and HTTP sessions."""
        self._stopping = True
        try:
            await self.checker.inflight.wait_idle()
        finally:
            if self.client is not None:
                await self.client.close()
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    await self._connection
            await self.links.close()
            await self.cdn.close()
            await self.store.close()
            _log.info("Discord bot stopped")
