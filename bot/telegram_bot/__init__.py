"""The Telegram adapter (python-telegram-bot): a thin layer between Telegram updates and the
platform-neutral core in :mod:`bot.core`. Named ``telegram_bot`` so it never shadows the
``telegram`` library."""

from bot.telegram_bot.adapter import TelegramBot

__all__ = ["TelegramBot"]
