"""Chat adapters (Telegram, Discord), their platform-neutral core, and the ``deepfake-bot``
entry point that builds everything and passes it in."""
