"""Issue 16, load: one burst of 540 images through Telegram, Discord and ``POST /v1/check`` at
once (the real adapters, core and web front; a detector with a fixed 4 ms service time). Every
request gets exactly one reply (a verdict, "busy", or for the flooding user "rate limited");
nothing is lost or duplicated; the admission bound holds; the flooder does not starve anyone.
Throughput and latency figures come from ``scripts/reliability load``, not from here."""

from __future__ import annotations

from pathlib import Path

import pytest

from .reliability import load

pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


@pytest.mark.slow
@pytest.mark.parametrize("queue_size", [4, 64])
async def test_a_mixed_burst_gets_exactly_one_reply_per_request(
    tmp_path: Path, queue_size: int
) -> None:
    plan = load.Plan(queue_size=queue_size)
    report = await load.run(tmp_path, plan)
    normal = plan.users_per_platform * plan.images_per_user * 3
    assert len(report.outcomes) == normal + plan.flood_images >= 500
    assert [o for o in report.outcomes if o.replies != 1] == []  # none lost, none doubled
    others = report.kinds(flood=False)
    assert set(others) <= {"verdict", "busy"}, others  # nobody else is rate-limited
    flood = report.kinds(flood=True)
    assert set(flood) <= {"verdict", "busy", "rate"}, flood
    assert flood["verdict"] <= plan.rate_per_minute  # busy answers are refunded, verdicts not
    assert flood["rate"] >= 1
    assert report.max_in_flight <= plan.concurrent  # the admission bound holds
    assert report.detector_calls == report.kinds()["verdict"]
    assert others["busy"] > 0  # the bound bites: busy at once, not an unbounded queue
    # The flooder holds at most its rate limit of the slots: the others get the rest.
    assert others["verdict"] >= plan.concurrent + plan.queue_size - plan.rate_per_minute
