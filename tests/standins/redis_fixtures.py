"""pytest fixtures around :mod:`tests.standins.redis_server` (import them into a test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.redis_server import redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real redis-server per test module; tests keep apart with their own key prefix."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
