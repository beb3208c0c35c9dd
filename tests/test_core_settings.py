"""Settings from the environment (names are a deployment contract), secret handling and log
redaction, the model card, and the per-chat settings file."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.core import ChatSettings, ModelCard
from bot.runner import RedactSecrets
from bot.settings import Settings
from detector.config import ModelConfig

TOKEN = "123456:AAAA-secret-token"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith(("TELEGRAM_", "DISCORD_", "HTTP_", "LOG_LEVEL", "MAX_")):
            monkeypatch.delenv(name)


def test_defaults_need_nothing_and_point_at_telegram() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.telegram_token is None
    assert s.telegram_api_url == "https://api.telegram.org/bot"
    assert s.telegram_file_url == "https://api.telegram.org/file/bot"
    assert s.telegram_mode == "polling"
    assert s.telegram_max_download_bytes == 20 * 1024 * 1024
    assert s.secrets() == []


def test_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": "http://127.0.0.1:8081/bot",
        "TELEGRAM_FILE_URL": "http://127.0.0.1:8081/file/bot",
        "TELEGRAM_MAX_DOWNLOAD_BYTES": "2000000000",
        "DEEPFAKE_BOT_WEIGHTS": str(tmp_path / "w.safetensors"),
        "MAX_IMAGE_BYTES": "1000",
        "MAX_FACES": "3",
        "MAX_CONCURRENT_CHECKS": "2",
        "CHECK_QUEUE_SIZE": "5",
        "RATE_LIMIT_PER_MINUTE": "4",
        "LOG_LEVEL": "debug",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "9000",
        "DISCORD_TOKEN": "discord-secret",
        "DISCORD_TEST_GUILD": "42",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.telegram_token is not None and s.telegram_token.get_secret_value() == TOKEN
    assert s.telegram_api_url == "http://127.0.0.1:8081/bot"
    assert s.telegram_file_url == "http://127.0.0.1:8081/file/bot"
    assert s.telegram_max_download_bytes == 2_000_000_000
    assert s.deepfake_bot_weights == tmp_path / "w.safetensors"
    assert (s.max_image_bytes, s.max_faces) == (1000, 3)
    assert (s.max_concurrent_checks, s.check_queue_size, s.rate_limit_per_minute) == (2, 5, 4)
    assert s.log_level == "DEBUG"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 9000)
    assert s.discord_test_guild == 42
    assert sorted(s.secrets()) == sorted([TOKEN, "discord-secret"])
    # Tokens never show in reprs (logs, tracebacks).
    assert TOKEN not in repr(s) and TOKEN not in str(s)


def test_dotenv_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("TELEGRAM_TOKEN=from-file\nRATE_LIMIT_PER_MINUTE=3\n", encoding="utf-8")
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "9")
    s = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    assert s.telegram_token is not None and s.telegram_token.get_secret_value() == "from-file"
    assert s.rate_limit_per_minute == 9


def test_blank_token_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_TOKEN", "  \n")
    assert Settings(_env_file=None).telegram_token is None  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"telegram_mode": "webhook"}, "needs TELEGRAM_WEBHOOK_URL"),
        (
            {"telegram_mode": "webhook", "telegram_webhook_url": "https://bot.example/tg"},
            "needs TELEGRAM_WEBHOOK_SECRET",
        ),
        (
            {
                "telegram_mode": "webhook",
                "telegram_webhook_url": "https://bot.example/tg",
                "telegram_webhook_secret": "has spaces!",
            },
            "A-Z, a-z, 0-9",
        ),
        ({"telegram_api_url": "ftp://x/bot"}, r"must be an http\(s\) URL"),
        ({"max_faces": 0}, "greater than or equal to 1"),
        ({"telegram_mode": "carrier-pigeon"}, "polling"),
    ],
)
def test_invalid_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_validation_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            telegram_token=TOKEN,
            telegram_mode="webhook",
            telegram_webhook_url="https://bot.example/tg",
            telegram_webhook_secret="not valid!",
        )
    assert "TELEGRAM_WEBHOOK_SECRET" in str(caught.value)
    assert TOKEN[:8] not in str(caught.value) and "not valid" not in str(caught.value)


def test_webhook_path_comes_from_the_url() -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_mode="webhook",
        telegram_webhook_url="https://bot.example/hooks/telegram",
        telegram_webhook_secret="abc_DEF-123",
    )
    assert s.telegram_webhook_path == "/hooks/telegram"


def test_log_redaction_hides_secrets_in_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([TOKEN]))
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("GET https://api.telegram.org/bot%s/getMe failed", TOKEN)
        try:
            raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
        except RuntimeError:
            log.exception("start-up failed")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert TOKEN not in output
    assert output.count("[redacted]") == 2
    assert "start-up failed" in output and "RuntimeError" in output


def test_model_card_states_bands_and_only_real_figures() -> None:
    config = ModelConfig(name="Xception (ours)", thresholds=(0.25, 0.8), description="FF++ crops")
    lines = ModelCard.from_config(config).lines()
    assert lines[:2] == ["Model: Xception (ours)", "FF++ crops"]
    assert "• below 25%: No manipulation detected" in lines
    assert "• 25% to 80%: Uncertain" in lines
    assert "• 80% and above: Likely manipulated" in lines
    assert lines[-1] == "No measured figures ship with these weights."
    measured = ModelCard.from_config(config.replace(extra={"val AUC": "0.91"})).lines()
    assert measured[-2:] == ["Measured figures:", "• val AUC: 0.91"]


async def test_chat_settings_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "chat-settings.json"
    settings = ChatSettings.load(path)
    await settings.set_autoscan("telegram:-100", True)
    await settings.set_autoscan("telegram:-200", True)
    reloaded = ChatSettings.load(path)
    assert reloaded.autoscan("telegram:-100") and reloaded.autoscan("telegram:-200")
    await settings.set_autoscan("telegram:-100", False)
    assert not ChatSettings.load(path).autoscan("telegram:-100")
    assert ChatSettings.load(None).autoscan("telegram:-200") is False


def test_a_damaged_chat_settings_file_is_an_error_not_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "chat-settings.json"
    path.write_text('{"autoscan": "everything"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"chat-settings\.json"):
        ChatSettings.load(path)


def test_env_example_documents_every_setting_with_its_default() -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    names = {
        line.split("=", 1)[0]
        for line in example.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert names == {field.upper() for field in Settings.model_fields}
    # Copied as-is to .env it changes nothing: its values are the defaults.
    assert Settings(_env_file=example) == Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_bot_side_never_loads_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import bot.core, bot.runner, bot.settings, bot.telegram_bot, bot.http_health\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_redis_url_and_its_password_are_secrets() -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url="redis://:pa55-w0rd-xyz@cache.internal:6379/0"
    )
    assert "redis://:pa55-w0rd-xyz@cache.internal:6379/0" in s.secrets()
    assert "pa55-w0rd-xyz" in s.secrets()
    with pytest.raises(ValidationError, match="redis://") as caught:
        Settings(_env_file=None, redis_url="http://:pa55-w0rd-xyz@cache")  # type: ignore[call-arg]
    assert "pa55-w0rd-xyz" not in str(caught.value)
