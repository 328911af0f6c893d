"""set_reminder, cancel_reminder and list_notifications."""

from __future__ import annotations

import uuid

import pytest

from support import PAST, Y, add, call_err, call_ok, get, list_all

pytestmark = pytest.mark.anyio


async def test_set_reminder_at_a_time_and_before_due(transport):
    async with transport.connect() as c:
        task = await add(c, "dentist", due=f"{Y}-01-15T17:00", time_zone="America/New_York")

        out = await call_ok(c, "set_reminder", {"task_id": task["id"], "at": f"{Y}-01-14T08:00"})
        first = out["reminder_id"]
        uuid.UUID(first)
        assert out["task"]["reminders"] == [
            {"id": first, "at": f"{Y}-01-14T08:00:00-05:00", "minutes_before": None}
        ]

        out = await call_ok(c, "set_reminder", {"task_id": task["id"], "minutes_before": 90})
        second = out["reminder_id"]
        assert second != first
        # Earliest first.
        assert out["task"]["reminders"] == [
            {"id": first, "at": f"{Y}-01-14T08:00:00-05:00", "minutes_before": None},
            {"id": second, "at": f"{Y}-01-15T15:30:00-05:00", "minutes_before": 90},
        ]
        # A bare date means 09:00 that day; RFC 3339 with an offset is taken as is.
        out = await call_ok(c, "set_reminder", {"task_id": task["id"], "at": f"{Y}-01-13"})
        assert {"id": out["reminder_id"], "at": f"{Y}-01-13T09:00:00-05:00", "minutes_before": None} in out["task"]["reminders"]
        out = await call_ok(c, "set_reminder", {"task_id": task["id"], "at": f"{Y}-01-12T12:00:00Z"})
        assert {"id": out["reminder_id"], "at": f"{Y}-01-12T07:00:00-05:00", "minutes_before": None} in out["task"]["reminders"]

        stored = await get(c, task["id"])
        assert stored == out["task"]
        assert len(stored["reminders"]) == 4
        # Other fields are untouched.
        assert (stored["title"], stored["due"], stored["status"]) == ("dentist", task["due"], "pending")


async def test_set_reminder_on_a_task_without_due(transport):
    async with transport.connect() as c:
        task = await add(c, "someday")
        out = await call_ok(c, "set_reminder", {"task_id": task["id"], "at": f"{Y}-05-05T05:05:00Z"})
        assert out["task"]["reminders"][0]["at"] == f"{Y}-05-05T05:05:00+00:00"
        await call_err(c, "set_reminder", {"task_id": task["id"], "minutes_before": 10}, "minutes_before", "due")
        assert len((await get(c, task["id"]))["reminders"]) == 1


async def test_set_reminder_rejections_leave_the_task_unchanged(transport):
    async with transport.connect() as c:
        task = await add(c, "soon", due=f"{Y}-01-15T17:00:00Z")
        before = await get(c, task["id"])
        await call_err(c, "set_reminder", {"task_id": task["id"], "at": PAST}, "reminder", "past")
        # Relative to a due time in the past.
        overdue = await add(c, "overdue", due=PAST)
        await call_err(c, "set_reminder", {"task_id": overdue["id"], "minutes_before": 5}, "past")
        await call_err(
            c,
            "set_reminder",
            {"task_id": task["id"], "at": f"{Y}-01-14T00:00:00Z", "minutes_before": 5},
            "exactly one",
        )
        await call_err(c, "set_reminder", {"task_id": task["id"]}, "exactly one")
        await call_err(
            c, "set_reminder", {"task_id": task["id"], "minutes_before": 366 * 24 * 60 + 1}, "minutes_before"
        )
        await call_err(c, "set_reminder", {"task_id": task["id"], "at": "next week"}, "reminder", "next week")
        assert await get(c, task["id"]) == before


async def test_eleventh_reminder_is_refused(transport):
    async with transport.connect() as c:
        task = await add(
            c,
            "busy",
            due=f"{Y}-01-15T17:00:00Z",
            reminders=[{"minutes_before": m} for m in range(1, 11)],
        )
        assert len(task["reminders"]) == 10
        before = await get(c, task["id"])
        await call_err(c, "set_reminder", {"task_id": task["id"], "minutes_before": 60}, "10 reminders", "cancel_reminder")
        assert await get(c, task["id"]) == before
        # After cancelling one there is room again.
        await call_ok(c, "cancel_reminder", {"task_id": task["id"], "reminder_id": before["reminders"][0]["id"]})
        out = await call_ok(c, "set_reminder", {"task_id": task["id"], "minutes_before": 60})
        assert len(out["task"]["reminders"]) == 10


async def test_set_reminder_on_a_completed_task_is_refused(transport):
    async with transport.connect() as c:
        task = await add(c, "done", due=f"{Y}-01-15T17:00:00Z")
        await call_ok(c, "complete_task", {"task_id": task["id"]})
        before = await get(c, task["id"])
        await call_err(c, "set_reminder", {"task_id": task["id"], "minutes_before": 5}, "completed", "reopen_task")
        assert await get(c, task["id"]) == before


async def test_cancel_reminder(transport):
    async with transport.connect() as c:
        task = await add(
            c,
            "two reminders",
            due=f"{Y}-01-15T17:00:00Z",
            reminders=[{"minutes_before": 10}, {"at": f"{Y}-01-01T00:00:00Z"}],
        )
        other = await add(c, "other", reminders=[{"at": f"{Y}-02-01T00:00:00Z"}])
        early, late = task["reminders"]

        out = await call_ok(c, "cancel_reminder", {"task_id": task["id"], "reminder_id": late["id"]})
        assert out["changed"] == ["reminders"]
        assert out["task"]["reminders"] == [early]
        assert (await get(c, task["id"]))["reminders"] == [early]

        await call_err(
            c, "cancel_reminder", {"task_id": task["id"], "reminder_id": late["id"]}, "reminder", late["id"], "not found"
        )
        unknown = str(uuid.uuid4())
        await call_err(c, "cancel_reminder", {"task_id": task["id"], "reminder_id": unknown}, unknown, "not found")
        # A reminder of another task is not found on this one, and stays where it is.
        other_reminder = other["reminders"][0]["id"]
        await call_err(c, "cancel_reminder", {"task_id": task["id"], "reminder_id": other_reminder}, "not found")
        assert (await get(c, other["id"]))["reminders"] == other["reminders"]
        assert (await get(c, task["id"]))["reminders"] == [early]


async def test_list_notifications_is_empty(transport):
    async with transport.connect() as c:
        await add(c, "with reminder", reminders=[{"at": f"{Y}-01-01T00:00:00Z"}])
        for args in ({}, {"unread_only": True}, {"mark_read": True}, {"limit": 1}, {"limit": 200},
                     {"unread_only": False, "mark_read": False, "limit": 50}):
            out = await call_ok(c, "list_notifications", args)
            assert out == {"notifications": [], "unread": 0}, args
        for limit in (0, 201):
            await call_err(c, "list_notifications", {"limit": limit}, "limit", str(limit), "1 to 200")
        await call_err(c, "list_notifications", {"task_id": str(uuid.uuid4())}, "task_id")
        assert (await list_all(c))["total"] == 1
