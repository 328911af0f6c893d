"""The user's time zone: what a call without `time_zone` is read in, and where it comes from.

Over stdio the machine's zone (`TZ`), over HTTP the token's `zoneinfo` claim; in both a
preference set with `update_settings` wins, and a call's own `time_zone` wins over everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from support import Y, call_err, call_ok

pytestmark = pytest.mark.anyio

LOCAL_DUE = f"{Y}-01-15T17:00"


def ambient(transport, zone: str) -> dict:
    """`connect` arguments that give the user `zone` from their machine or their token."""
    if transport.kind == "stdio":
        return {"env": {"TZ": zone}}
    return {"claims": {"zoneinfo": zone}}


async def test_a_call_without_a_zone_is_read_in_the_users_zone(transport):
    source = "machine" if transport.kind == "stdio" else "token"
    async with transport.connect(**ambient(transport, "Europe/Paris")) as c:
        settings = await call_ok(c, "get_settings")
        assert (settings["time_zone"], settings["time_zone_source"]) == ("Europe/Paris", source)
        now = datetime.fromisoformat(settings["now"])
        assert now.utcoffset() == timedelta(hours=1) or now.utcoffset() == timedelta(hours=2)
        assert abs(now - datetime.now(timezone.utc)) < timedelta(minutes=2)
        if transport.kind == "stdio":
            assert "Europe/Paris" in (c.instructions or ""), c.instructions

        task = (await call_ok(c, "add_task", {"title": "Call Paris", "due": LOCAL_DUE}))["task"]
        assert task["time_zone"] == "Europe/Paris"
        assert task["due"] == f"{LOCAL_DUE}:00+01:00"
        # The call's own zone wins.
        other = {"title": "Call Tokyo", "due": LOCAL_DUE, "time_zone": "Asia/Tokyo"}
        task = (await call_ok(c, "add_task", other))["task"]
        assert task["due"] == f"{LOCAL_DUE}:00+09:00"
        # Local bounds of list_tasks are read in the user's zone too: 17:00 Paris is 16:00 UTC.
        listed = await call_ok(c, "list_tasks", {"due_after": f"{Y}-01-15T16:30", "due_before": f"{Y}-01-15T17:30"})
        assert [t["title"] for t in listed["tasks"]] == ["Call Paris"]


async def test_a_preference_wins_over_the_surroundings_until_forgotten(transport):
    source = "machine" if transport.kind == "stdio" else "token"
    async with transport.connect(**ambient(transport, "Europe/Paris")) as c:
        set_ = await call_ok(c, "update_settings", {"time_zone": "america/new_york"})
        assert (set_["time_zone"], set_["time_zone_source"]) == ("America/New_York", "preference")
        task = (await call_ok(c, "add_task", {"title": "Call New York", "due": LOCAL_DUE}))["task"]
        assert task["due"] == f"{LOCAL_DUE}:00-05:00"
        # Nothing given changes nothing.
        assert (await call_ok(c, "update_settings", {}))["time_zone"] == "America/New_York"

        await call_err(c, "update_settings", {"time_zone": "Mars/Olympus"}, "time_zone", "Mars/Olympus")
        assert (await call_ok(c, "get_settings"))["time_zone"] == "America/New_York"

        forgot = await call_ok(c, "update_settings", {"time_zone": None})
        assert (forgot["time_zone"], forgot["time_zone_source"]) == ("Europe/Paris", source)


async def test_with_nothing_said_the_zone_is_utc(transport):
    if transport.kind == "stdio":
        # The test's stdio servers run with TZ=UTC: the machine says UTC.
        expected = ("UTC", "machine")
    else:
        expected = ("UTC", "default")
    async with transport.connect() as c:
        settings = await call_ok(c, "get_settings")
        assert (settings["time_zone"], settings["time_zone_source"]) == expected
        task = (await call_ok(c, "add_task", {"title": "Call home", "due": LOCAL_DUE}))["task"]
        assert task["due"] == f"{LOCAL_DUE}:00+00:00"


async def test_a_preference_belongs_to_its_user(transport):
    async with transport.connect() as alice:
        await call_ok(alice, "update_settings", {"time_zone": "Asia/Tokyo"})
    other = f"{transport.user}-other"
    async with transport.connect(user=other) as bob:
        assert (await call_ok(bob, "get_settings"))["time_zone"] == "UTC"


async def test_an_unknown_zone_in_a_token_is_no_reason_to_refuse(transport):
    if transport.kind == "stdio":
        pytest.skip("tokens are an HTTP matter")
    async with transport.connect(claims={"zoneinfo": "Mars/Olympus"}) as c:
        settings = await call_ok(c, "get_settings")
        assert (settings["time_zone"], settings["time_zone_source"]) == ("UTC", "default")
