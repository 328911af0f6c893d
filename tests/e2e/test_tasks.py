"""Happy paths of add_task, get_task, update_task, complete_task, reopen_task and delete_task."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from support import (
    Y,
    add,
    call_err,
    call_ok,
    get,
    list_all,
    parse_ts,
    same_instant,
    without,
)

pytestmark = pytest.mark.anyio

FULL = {
    "title": "  Buy milk  ",
    "description": "2 litres\nsemi-skimmed",
    "due": f"{Y}-01-15T17:00",
    "time_zone": "america/new_york",
    "tags": ["Home", "home", " Errands "],
    "priority": "high",
    "reminders": [{"minutes_before": 30}, {"at": f"{Y}-01-10"}],
    "recurrence": {
        "frequency": "weekly",
        "interval": 2,
        "weekdays": ["we", "mo", "mo"],
        "until": f"{Y}-12-31",
        "count": 10,
    },
}


def check_full_task(task: dict, owner: str) -> None:
    uuid.UUID(task["id"])
    assert task["owner"] == owner
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres\nsemi-skimmed"
    assert task["status"] == "pending"
    assert task["priority"] == "high"
    assert task["tags"] == ["home", "errands"]
    assert task["time_zone"] == "America/New_York"
    assert task["due"] == f"{Y}-01-15T17:00:00-05:00"
    series = task["recurrence"]
    assert series["rule"] == {
        "frequency": "weekly",
        "interval": 2,
        "weekdays": ["mo", "we"],
        "until": f"{Y}-12-31T23:59:59-05:00",
        "count": 10,
    }
    assert "every 2 weeks" in series["summary"] and "Mon, Wed" in series["summary"]
    assert series["series_id"] == task["id"]
    assert series["series_start"] == task["due"]
    reminders = task["reminders"]
    assert [(r["at"], r["minutes_before"]) for r in reminders] == [
        (f"{Y}-01-10T09:00:00-05:00", None),
        (f"{Y}-01-15T16:30:00-05:00", 30),
    ]
    assert len({r["id"] for r in reminders}) == 2
    assert task["completed_at"] is None
    created = parse_ts(task["created_at"])
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=2)
    assert created.utcoffset() == parse_ts(task["due"]).utcoffset(), "times are in the task's zone"
    assert same_instant(task["created_at"], task["updated_at"])


async def test_add_task_with_every_field_then_get(transport):
    async with transport.connect() as c:
        result = await c.call_tool("add_task", FULL)
        assert not result.is_error, result.content
        summary = result.content[0].text
        created = result.structured_content["task"]
        check_full_task(created, transport.user)
        assert "Buy milk" in summary and created["id"] in summary

        fetched = await get(c, created["id"])
        check_full_task(fetched, transport.user)
        ts = ("created_at", "updated_at")
        assert without(fetched, *ts) == without(created, *ts)
        for k in ts:
            assert same_instant(fetched[k], created[k])


async def test_write_results_are_exactly_what_reads_return(transport):
    """Timestamps are reported at storage precision, so a snapshot never changes on re-read."""
    async with transport.connect() as c:
        created = await add(c, "precision", due=f"{Y}-01-15T17:00:00.123456789Z")
        assert created["due"] == f"{Y}-01-15T17:00:00.123456+00:00"
        assert await get(c, created["id"]) == created
        updated = (await call_ok(c, "update_task", {"task_id": created["id"], "title": "p2"}))["task"]
        assert await get(c, created["id"]) == updated
        done = (await call_ok(c, "complete_task", {"task_id": created["id"]}))["task"]
        assert await get(c, created["id"]) == done
        assert (await list_all(c))["tasks"] == [done]


async def test_add_task_defaults(transport):
    async with transport.connect() as c:
        task = await add(c, "Just a title")
    assert task["owner"] == transport.user
    assert task["title"] == "Just a title"
    assert task["description"] is None
    assert task["status"] == "pending"
    assert task["priority"] == "medium"
    assert task["tags"] == []
    assert task["due"] is None
    assert task["time_zone"] == "UTC"
    assert task["recurrence"] is None
    assert task["reminders"] == []
    assert task["completed_at"] is None


def nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


SPRING_FORWARD = nth_sunday(Y, 3, 2)  # US daylight saving time starts
FALL_BACK = nth_sunday(Y, 11, 1)  # and ends


@pytest.mark.parametrize(
    ("due", "zone", "expected"),
    [
        # A date alone means the end of that day in the task's zone.
        (f"{Y}-06-15", "Europe/Paris", f"{Y}-06-15T23:59:59+02:00"),
        # An explicit offset wins over the zone; the result is shown in the zone.
        (f"{Y}-01-15T09:00:00-05:00", "Europe/Berlin", f"{Y}-01-15T15:00:00+01:00"),
        (f"{Y}-01-15 14:00:00Z", "UTC", f"{Y}-01-15T14:00:00+00:00"),
        # A local time without seconds, read in the zone.
        (f"{Y}-07-04T09:30", "America/New_York", f"{Y}-07-04T09:30:00-04:00"),
        # A wall time skipped by DST moves forward by the gap; a repeated one takes the first.
        (f"{SPRING_FORWARD}T02:30", "America/New_York", f"{SPRING_FORWARD}T03:30:00-04:00"),
        (f"{FALL_BACK}T01:30", "America/New_York", f"{FALL_BACK}T01:30:00-04:00"),
    ],
)
async def test_add_task_due_formats(transport, due, zone, expected):
    async with transport.connect() as c:
        task = await add(c, "due formats", due=due, time_zone=zone)
    assert task["due"] == expected
    assert task["time_zone"] == zone


async def test_add_task_cron_recurrence(transport):
    async with transport.connect() as c:
        task = await add(
            c,
            "stand-up",
            due=f"{Y}-01-15T09:00",
            time_zone="Europe/Paris",
            recurrence={"frequency": "cron", "cron": " 0  9 * * 1-5 "},
        )
    assert task["recurrence"]["rule"] == {"frequency": "cron", "cron": "0 9 * * 1-5"}
    assert "0 9 * * 1-5" in task["recurrence"]["summary"]


async def test_update_task_changes_only_the_given_fields(transport):
    async with transport.connect() as c:
        before = await get(c, (await add(c, **FULL))["id"])
        out = await call_ok(c, "update_task", {"task_id": before["id"], "title": "Buy oat milk"})
        assert out["changed"] == ["title"]
        after = out["task"]
        assert after["title"] == "Buy oat milk"
        unchanged = ("title", "updated_at", "created_at", "version")
        assert without(after, *unchanged) == without(before, *unchanged)
        assert same_instant(after["created_at"], before["created_at"])
        assert parse_ts(after["updated_at"]) > parse_ts(before["updated_at"])
        assert after["version"] == before["version"] + 1

        out = await call_ok(
            c,
            "update_task",
            {
                "task_id": before["id"],
                "priority": "low",
                "tags": ["Shop", "FOOD"],
                "description": "oat, not cow",
            },
        )
        assert out["changed"] == ["description", "priority", "tags"]
        assert (out["task"]["priority"], out["task"]["tags"], out["task"]["description"]) == (
            "low",
            ["shop", "food"],
            "oat, not cow",
        )
        # The change is stored, not only reported.
        assert await get(c, before["id"]) == out["task"]

        # [] removes every tag; "" removes the description.
        out = await call_ok(c, "update_task", {"task_id": before["id"], "tags": [], "description": ""})
        assert out["changed"] == ["description", "tags"]
        assert out["task"]["tags"] == [] and out["task"]["description"] is None
        assert (await list_all(c, tags=["shop"]))["total"] == 0


async def test_update_task_null_clears_description_due_and_recurrence(transport):
    async with transport.connect() as c:
        task = await add(
            c,
            "clear me",
            description="details",
            due=f"{Y}-03-01T10:00:00Z",
            recurrence={"frequency": "daily"},
            reminders=[{"at": f"{Y}-02-20T08:00:00Z"}],
        )
        out = await call_ok(
            c,
            "update_task",
            {"task_id": task["id"], "description": None, "due": None, "recurrence": None},
        )
        assert sorted(out["changed"]) == ["description", "due", "recurrence"]
        t = out["task"]
        assert (t["description"], t["due"], t["recurrence"]) == (None, None, None)
        # An absolute reminder does not depend on the due time and stays.
        assert [r["at"] for r in t["reminders"]] == [f"{Y}-02-20T08:00:00+00:00"]
        stored = await get(c, task["id"])
        assert (stored["description"], stored["due"], stored["recurrence"]) == (None, None, None)


async def test_update_task_moving_due_moves_relative_reminders_and_keeps_recurrence(transport):
    async with transport.connect() as c:
        task = await add(c, **FULL)
        fixed, relative = task["reminders"]
        out = await call_ok(c, "update_task", {"task_id": task["id"], "due": f"{Y}-02-20T10:00"})
        assert sorted(out["changed"]) == ["due", "recurrence", "reminders"]
        t = out["task"]
        assert t["due"] == f"{Y}-02-20T10:00:00-05:00"
        by_id = {r["id"]: r for r in t["reminders"]}
        assert by_id[relative["id"]] == {
            "id": relative["id"],
            "at": f"{Y}-02-20T09:30:00-05:00",
            "minutes_before": 30,
        }
        assert by_id[fixed["id"]] == fixed
        # Same rule and series; the series now starts at the new due time.
        assert t["recurrence"]["rule"] == task["recurrence"]["rule"]
        assert t["recurrence"]["series_id"] == task["recurrence"]["series_id"]
        assert t["recurrence"]["series_start"] == t["due"]
        assert await get(c, task["id"]) == t


async def test_update_task_to_identical_values_changes_nothing(transport):
    async with transport.connect() as c:
        task = await add(c, **FULL)
        before = await get(c, task["id"])
        out = await call_ok(
            c,
            "update_task",
            {
                "task_id": task["id"],
                "title": " Buy milk ",
                "priority": "high",
                "tags": ["HOME", "errands"],
                # The same instant, written with another offset.
                "due": f"{Y}-01-15T22:00:00Z",
                "time_zone": "America/New_York",
                "description": "2 litres\nsemi-skimmed",
                "recurrence": FULL["recurrence"],
            },
        )
        assert out["changed"] == []
        assert out["task"] == before
        assert await get(c, task["id"]) == before
        # An update with no fields at all is fine too.
        out = await call_ok(c, "update_task", {"task_id": task["id"]})
        assert out["changed"] == [] and out["task"] == before


async def test_update_task_time_zone_keeps_the_instant(transport):
    async with transport.connect() as c:
        task = await add(c, "zone", due=f"{Y}-01-15T17:00", time_zone="America/New_York")
        out = await call_ok(c, "update_task", {"task_id": task["id"], "time_zone": "Europe/Paris"})
        t = out["task"]
        assert "time_zone" in out["changed"]
        assert t["time_zone"] == "Europe/Paris"
        assert t["due"] == f"{Y}-01-15T23:00:00+01:00"
        assert same_instant(t["due"], task["due"])
        # Local times in the same call are read in the new zone.
        out = await call_ok(
            c,
            "update_task",
            {"task_id": task["id"], "time_zone": "Asia/Tokyo", "due": f"{Y}-01-16T09:00"},
        )
        assert out["task"]["due"] == f"{Y}-01-16T09:00:00+09:00"


async def test_update_task_time_zone_does_not_report_created_at_as_changed(transport):
    async with transport.connect() as c:
        task = await add(c, "zone", time_zone="America/New_York")
        out = await call_ok(c, "update_task", {"task_id": task["id"], "time_zone": "Europe/Paris"})
    assert out["changed"] == ["time_zone"]


async def test_update_task_replaces_the_recurrence(transport):
    async with transport.connect() as c:
        task = await add(c, **FULL)
        out = await call_ok(
            c,
            "update_task",
            {"task_id": task["id"], "recurrence": {"frequency": "monthly", "interval": 3}},
        )
        assert out["changed"] == ["recurrence"]
        series = out["task"]["recurrence"]
        assert series["rule"] == {"frequency": "monthly", "interval": 3}
        assert series["series_id"] == task["recurrence"]["series_id"]
        assert series["series_start"] == task["due"]
        assert "every 3 months" in series["summary"]
        assert (await get(c, task["id"]))["recurrence"] == series


async def test_complete_and_reopen_are_idempotent(transport):
    async with transport.connect() as c:
        task = await add(c, "finish me", tags=["x"])
        out = await call_ok(c, "complete_task", {"task_id": task["id"]})
        assert sorted(out["changed"]) == ["completed_at", "status"]
        done = out["task"]
        assert done["status"] == "completed"
        completed_at = parse_ts(done["completed_at"])
        assert abs(datetime.now(timezone.utc) - completed_at) < timedelta(minutes=2)

        again = await call_ok(c, "complete_task", {"task_id": task["id"]})
        assert again["changed"] == []
        assert again["task"]["status"] == "completed"
        assert same_instant(again["task"]["completed_at"], done["completed_at"])

        assert [t["id"] for t in (await call_ok(c, "list_tasks", {}))["tasks"]] == []
        completed = await call_ok(c, "list_tasks", {"status": "completed"})
        assert [t["id"] for t in completed["tasks"]] == [task["id"]]
        assert completed["tasks"][0]["status"] == "completed"

        out = await call_ok(c, "reopen_task", {"task_id": task["id"]})
        assert sorted(out["changed"]) == ["completed_at", "status"]
        assert out["task"]["status"] == "pending" and out["task"]["completed_at"] is None
        again = await call_ok(c, "reopen_task", {"task_id": task["id"]})
        assert again["changed"] == [] and again["task"]["status"] == "pending"
        assert (await get(c, task["id"]))["status"] == "pending"
        assert [t["id"] for t in (await call_ok(c, "list_tasks", {}))["tasks"]] == [task["id"]]


async def test_delete_task(transport):
    async with transport.connect() as c:
        keep = await add(c, "keep me")
        task = await add(c, **FULL)
        before = await get(c, task["id"])
        out = await call_ok(c, "delete_task", {"task_id": task["id"]})
        assert out["deleted"] == before
        await call_err(c, "get_task", {"task_id": task["id"]}, "not found", task["id"])
        await call_err(c, "delete_task", {"task_id": task["id"]}, "not found")
        await call_err(c, "complete_task", {"task_id": task["id"]}, "not found")
        await call_err(
            c,
            "cancel_reminder",
            {"task_id": task["id"], "reminder_id": before["reminders"][0]["id"]},
            "not found",
        )
        listing = await list_all(c)
        assert [t["id"] for t in listing["tasks"]] == [keep["id"]]
        assert listing["total"] == 1
        # Its tags went with it.
        assert (await list_all(c, tags=["home"]))["total"] == 0
