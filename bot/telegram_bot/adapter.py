"""``TelegramBot``: builds the PTB application around the core and owns its life cycle.

Concurrency is explicit: PTB processes up to ``TELEGRAM_CONCURRENT_UPDATES`` updates at once
(its default is one at a time), and the checks they start are bounded again by the core's
admission (running + waiting, then "busy"). Intake is long polling by default or a webhook;
stopping is two-step so a runner can stop intake on every platform before draining any:
``stop_intake`` (no new updates) then ``finish`` (running handlers and their replies complete,
albums still collecting are answered, HTTP clients close).
"""

from __future__ import annotations

import logging

from telegram import BotCommandScopeAllChatAdministrators, BotCommandScopeDefault, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.core import ChatSettings, CheckService, ModelCard
from bot.settings import Settings
from bot.telegram_bot import texts
from bot.telegram_bot.albums import AlbumCollector
from bot.telegram_bot.flood import FloodControl
from bot.telegram_bot.handled import HandledUpdates, UpdateLedger
from bot.telegram_bot.handlers import Handlers
from bot.telegram_bot.webhook import WebhookServer

_log = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE]
_MEDIA = (
    filters.PHOTO | filters.Document.ALL | filters.VIDEO | filters.ANIMATION | filters.VIDEO_NOTE
)
_CHECK_CAPTION = filters.CaptionRegex(r"^/check(@\w+)?(\s|$)")


class TelegramBot:
    name = "telegram"

    def __init__(
        self,
        settings: Settings,
        checks: CheckService,
        chat_settings: ChatSettings,
        card: ModelCard,
        *,
        updates: UpdateLedger | None = None,
    ) -> None:
        """``updates``: the de-duplication store (shared in Redis across replicas); by default
        this process's own, kept in ``TELEGRAM_UPDATES_FILE`` when that is set."""
        if settings.telegram_token is None:
            raise ValueError("TELEGRAM_TOKEN is not set")
        self.settings = settings
        self.flood = FloodControl(
            settings.telegram_flood_max_retries, settings.telegram_flood_max_wait_s
        )
        builder = (
            Application.builder()
            .token(settings.telegram_token.get_secret_value())
            .base_url(settings.telegram_api_url)
            .base_file_url(settings.telegram_file_url)
            .concurrent_updates(settings.telegram_concurrent_updates)
            .rate_limiter(self.flood)
        )
        if settings.telegram_mode == "webhook":
            builder = builder.updater(None)
        self.application = builder.build()
        self.albums = AlbumCollector(settings.telegram_album_wait_s)
        self.handled = (
            updates if updates is not None else HandledUpdates(settings.telegram_updates_file)
        )
        self.handlers = Handlers(
            checks,
            chat_settings,
            card,
            self.albums,
            download_limit=settings.telegram_max_download_bytes,
            progress_after_s=settings.telegram_progress_after_s,
            progress_every_s=settings.telegram_progress_every_s,
        )
        self._register(self.handlers)
        self.webhook: WebhookServer | None = None
        self.running = False

    def _register(self, h: Handlers) -> None:
        app = self.application
        # Redelivered updates (after a crash, or a late webhook answer) are answered once:
        # group -1 claims an id (or drops it: already answered), group 1 records it once its
        # handlers finished.
        app.add_handler(TypeHandler(Update, self._skip_handled), group=-1)
        app.add_handler(TypeHandler(Update, self._mark_handled), group=1)
        private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
        groups = filters.ChatType.GROUPS & filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler("start", h.start))
        app.add_handler(CommandHandler("help", h.help))
        app.add_handler(CommandHandler("about", h.about))
        app.add_handler(CommandHandler("check", h.check_command))
        app.add_handler(CommandHandler("autoscan", h.autoscan))
        app.add_handler(MessageHandler(private & _MEDIA, h.private_media))
        app.add_handler(MessageHandler(groups & _MEDIA & _CHECK_CAPTION, h.caption_check))
        app.add_handler(
            MessageHandler(groups & (filters.PHOTO | filters.Document.IMAGE), h.group_media)
        )
        app.add_handler(MessageHandler(private, h.private_other))
        app.add_error_handler(h.on_error)

    async def _skip_handled(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self.handled.claim(update.update_id):
            _log.info("update %d was already answered; not answering it again", update.update_id)
            raise ApplicationHandlerStop

    async def _mark_handled(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.handled.done(update.update_id)

    async def start(self) -> None:
        """Connect (``getMe``), register the command menu, start processing and intake."""
        app = self.application
        try:
            await app.initialize()
            await self._set_commands()
            await app.start()
            if self.settings.telegram_mode == "webhook":
                await self._start_webhook()
            else:
                assert app.updater is not None
                await app.updater.start_polling(
                    timeout=self.settings.telegram_poll_timeout_s,
                    allowed_updates=ALLOWED_UPDATES,
                    bootstrap_retries=3,
                    error_callback=self._polling_error,
                )
        except BaseException:
            await self.stop_intake()
            await self.finish()
            raise
        self.running = True
        _log.info("Telegram bot @%s running (%s)", app.bot.username, self.settings.telegram_mode)

    async def _set_commands(self) -> None:
        bot = self.application.bot
        try:
            await bot.set_my_commands(texts.PRIVATE_COMMANDS, scope=BotCommandScopeDefault())
            await bot.set_my_commands(
                texts.ADMIN_COMMANDS, scope=BotCommandScopeAllChatAdministrators()
            )
        except TelegramError as exc:  # the menu is a convenience; commands work without it
            _log.warning("could not register the command menu: %s", exc)

    async def _start_webhook(self) -> None:
        s = self.settings
        assert s.telegram_webhook_url is not None and s.telegram_webhook_secret is not None
        secret = s.telegram_webhook_secret.get_secret_value()
        self.webhook = WebhookServer(
            self.application,
            path=s.telegram_webhook_path,
            secret=secret,
            host=s.telegram_webhook_listen,
            port=s.telegram_webhook_port,
        )
        await self.webhook.start()
        await self.application.bot.set_webhook(
            s.telegram_webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
        )

    def _polling_error(self, exc: TelegramError) -> None:
        # PTB retries polling by itself (with back-off); a network blip is not an error.
        _log.warning("polling for updates failed, retrying: %s", exc)

    async def stop_intake(self) -> None:
        """Take no new updates. (A webhook stays registered: Telegram keeps updates queued
        for the next start instead of losing them.)"""
        self.running = False
        self.handled.stop_waiting()
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.webhook is not None:
            await self.webhook.stop()

    async def finish(self) -> None:
        """Answer what was taken in, then close the connections. PTB's ``stop`` first runs
        the updates already fetched and waits for running handlers (album parts among them
        reach the collector); then albums still collecting are answered; then the HTTP
        clients close."""
        app = self.application
        if app.running:
            await app.stop()
        await self.albums.drain()
        await app.shutdown()
        _log.info("Telegram bot stopped")
