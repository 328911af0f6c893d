"""Invalid arguments: each is a tool result with `isError: true` and a message that names what to
fix (never a JSON-RPC error), and nothing is created or changed.

Cases are grouped per tool and run in one connection per transport; a failing case is reported
with its id.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from support import PAST, Y, add, call_err, get, list_all

pytestmark = pytest.mark.anyio

TASK = "<baseline task id>"
REMINDER = "<baseline reminder id>"
UNKNOWN = str(uuid.uuid4())
DUE = {"due": f"{Y}-05-01T10:00:00Z"}

BASELINE = {
    "title": "Baseline",
    "description": "keep me as I am",
    "due": f"{Y}-05-01T10:00:00Z",
    "tags": ["keep"],
    "priority": "low",
    "reminders": [{"minutes_before": 15}],
    "recurrence": {"frequency": "daily"},
}


def rec(**rule: Any) -> dict[str, Any]:
    return {"title": "x", **DUE, "recurrence": rule}


# (case id, tool, arguments, substrings the message must contain)
CASES: dict[str, list[tuple[str, str, dict[str, Any], list[str]]]] = {
    "add_task": [
        ("title-empty", "add_task", {"title": ""}, ["title", "empty"]),
        ("title-blank", "add_task", {"title": "   "}, ["title", "empty"]),
        ("title-201", "add_task", {"title": "x" * 201}, ["title", "201", "200"]),
        ("title-control-char", "add_task", {"title": "a\u0007b"}, ["title", "U+0007"]),
        ("title-missing", "add_task", {}, ["title"]),
        ("description-2001", "add_task", {"title": "x", "description": "d" * 2001}, ["description", "2001", "2000"]),
        ("tags-11", "add_task", {"title": "x", "tags": [f"t{i}" for i in range(11)]}, ["tags", "11", "at most 10"]),
        ("tag-51", "add_task", {"title": "x", "tags": ["t" * 51]}, ["tags", "51", "50"]),
        ("tag-blank", "add_task", {"title": "x", "tags": ["ok", " "]}, ["tags", "empty"]),
        ("priority-unknown", "add_task", {"title": "x", "priority": "urgent"}, ["urgent", "low", "medium", "high"]),
        ("due-unreadable", "add_task", {"title": "x", "due": "tomorrow"}, ["due", "tomorrow", "RFC 3339"]),
        ("due-year-1800", "add_task", {"title": "x", "due": "1800-01-01"}, ["due", "1800", "1900"]),
        ("due-year-10000", "add_task", {"title": "x", "due": "10000-01-01"}, ["due", "9999"]),
        ("due-feb-30", "add_task", {"title": "x", "due": f"{Y}-02-30"}, ["due", "not a real date"]),
        ("due-hour-24", "add_task", {"title": "x", "due": f"{Y}-02-03T24:30"}, ["due", "not a real"]),
        ("time-zone-unknown", "add_task", {"title": "x", "time_zone": "Mars/Olympus_Mons"}, ["time_zone", "Mars/Olympus_Mons"]),
        ("time-zone-offset", "add_task", {"title": "x", "time_zone": "+05:00"}, ["time_zone", "IANA"]),
        ("recurrence-without-due", "add_task", {"title": "x", "recurrence": {"frequency": "daily"}}, ["recurrence", "due"]),
        ("recurrence-interval-0", "add_task", rec(frequency="daily", interval=0), ["recurrence.interval", "1 and 1000"]),
        ("recurrence-interval-1001", "add_task", rec(frequency="weekly", interval=1001), ["recurrence.interval", "1001"]),
        ("recurrence-weekdays-with-daily", "add_task", rec(frequency="daily", weekdays=["mo"]), ["recurrence.weekdays", "weekly"]),
        ("recurrence-weekday-unknown", "add_task", rec(frequency="weekly", weekdays=["xx"]), ["xx"]),
        ("recurrence-frequency-unknown", "add_task", rec(frequency="hourly"), ["hourly", "daily"]),
        ("recurrence-cron-6-fields", "add_task", rec(frequency="cron", cron="0 0 9 * * 1"), ["recurrence.cron", "6 field", "5"]),
        ("recurrence-cron-never-fires", "add_task", rec(frequency="cron", cron="0 0 31 2 *"), ["recurrence.cron", "never fires"]),
        ("recurrence-cron-invalid", "add_task", rec(frequency="cron", cron="61 * * * *"), ["recurrence.cron", "not a valid cron"]),
        ("recurrence-cron-missing", "add_task", rec(frequency="cron"), ["recurrence.cron", "required"]),
        ("recurrence-cron-with-daily", "add_task", rec(frequency="daily", cron="0 9 * * *"), ["recurrence.cron", "only allowed"]),
        ("recurrence-interval-with-cron", "add_task", rec(frequency="cron", cron="0 9 * * *", interval=2), ["recurrence.interval", "cron"]),
        ("recurrence-count-0", "add_task", rec(frequency="daily", count=0), ["recurrence.count", "10000"]),
        ("recurrence-until-before-due", "add_task", rec(frequency="daily", until=f"{Y - 1}-01-01"), ["recurrence.until", "before"]),
        ("recurrence-until-unreadable", "add_task", rec(frequency="daily", until="never"), ["recurrence.until", "never"]),
        ("recurrence-unknown-field", "add_task", rec(frequency="daily", every=2), ["every"]),
        ("reminder-both-fields", "add_task", {"title": "x", **DUE, "reminders": [{"at": f"{Y}-04-01", "minutes_before": 5}]}, ["reminders", "exactly one"]),
        ("reminder-no-field", "add_task", {"title": "x", **DUE, "reminders": [{}]}, ["reminders", "exactly one"]),
        ("reminder-minutes-without-due", "add_task", {"title": "x", "reminders": [{"minutes_before": 5}]}, ["reminders", "due"]),
        ("reminder-in-the-past", "add_task", {"title": "x", "reminders": [{"at": PAST}]}, ["reminders", "past"]),
        ("reminder-before-past-due", "add_task", {"title": "x", "due": PAST, "reminders": [{"minutes_before": 5}]}, ["reminders", "past"]),
        ("reminders-11", "add_task", {"title": "x", **DUE, "reminders": [{"minutes_before": m} for m in range(1, 12)]}, ["reminders", "11", "at most 10"]),
        ("reminder-more-than-a-year-before", "add_task", {"title": "x", **DUE, "reminders": [{"minutes_before": 366 * 24 * 60 + 1}]}, ["reminders", "minutes_before"]),
        ("unknown-field", "add_task", {"title": "x", "status": "completed"}, ["status"]),
        ("owner-is-not-an-argument", "add_task", {"title": "x", "owner": "someone-else"}, ["owner"]),
        ("title-wrong-type", "add_task", {"title": 5}, ["expected a string"]),
        ("tags-wrong-type", "add_task", {"title": "x", "tags": "work"}, ["sequence"]),
        ("reminders-wrong-type", "add_task", {"title": "x", "reminders": {"at": f"{Y}-01-01"}}, ["sequence"]),
    ],
    "list_tasks": [
        ("limit-0", "list_tasks", {"limit": 0}, ["limit", "0", "1 to 200"]),
        ("limit-201", "list_tasks", {"limit": 201}, ["limit", "201", "1 to 200"]),
        ("limit-negative", "list_tasks", {"limit": -1}, ["-1"]),
        ("limit-wrong-type", "list_tasks", {"limit": "ten"}, ["ten"]),
        ("cursor-garbage", "list_tasks", {"cursor": "garbage!"}, ["cursor", "next_cursor"]),
        ("cursor-not-ours", "list_tasks", {"cursor": base64.urlsafe_b64encode(b'{"s":"created"}').decode()}, ["cursor"]),
        ("status-unknown", "list_tasks", {"status": "done"}, ["done", "pending"]),
        ("sort-unknown", "list_tasks", {"sort": "size"}, ["size", "created"]),
        ("order-unknown", "list_tasks", {"order": "up"}, ["up", "asc"]),
        ("priority-unknown", "list_tasks", {"priority": "urgent"}, ["urgent"]),
        ("search-201", "list_tasks", {"search": "s" * 201}, ["search", "200"]),
        ("search-control-char", "list_tasks", {"search": "a\u0000b"}, ["search", "control"]),
        ("due-before-unreadable", "list_tasks", {"due_before": "soon"}, ["due_before", "soon"]),
        ("due-after-year-1800", "list_tasks", {"due_after": "1800-01-01"}, ["due_after", "1900"]),
        ("tags-11", "list_tasks", {"tags": [f"t{i}" for i in range(11)]}, ["tags", "10"]),
        ("tag-51", "list_tasks", {"tags": ["t" * 51]}, ["tags", "50"]),
        ("time-zone-unknown", "list_tasks", {"due_before": f"{Y}-01-01T00:00", "time_zone": "Nowhere/Special"}, ["time_zone", "Nowhere/Special"]),
        ("overdue-wrong-type", "list_tasks", {"overdue": "yes"}, ["boolean"]),
        ("owner-is-not-an-argument", "list_tasks", {"owner": "someone-else"}, ["owner"]),
    ],
    "update_task": [
        ("title-empty", "update_task", {"task_id": TASK, "title": ""}, ["title", "empty"]),
        ("title-201", "update_task", {"task_id": TASK, "title": "x" * 201}, ["title", "201"]),
        ("description-2001", "update_task", {"task_id": TASK, "description": "d" * 2001}, ["description", "2000"]),
        ("tags-11", "update_task", {"task_id": TASK, "tags": [f"t{i}" for i in range(11)]}, ["tags", "at most 10"]),
        ("priority-unknown", "update_task", {"task_id": TASK, "priority": "asap"}, ["asap"]),
        ("due-unreadable", "update_task", {"task_id": TASK, "due": "later"}, ["due", "later"]),
        ("due-year-1800", "update_task", {"task_id": TASK, "due": "1800-06-01T00:00:00Z"}, ["due", "1900"]),
        ("time-zone-unknown", "update_task", {"task_id": TASK, "time_zone": "Europe/Atlantis"}, ["time_zone", "Europe/Atlantis"]),
        ("recurrence-interval-0", "update_task", {"task_id": TASK, "recurrence": {"frequency": "daily", "interval": 0}}, ["recurrence.interval"]),
        ("recurrence-cron-never-fires", "update_task", {"task_id": TASK, "recurrence": {"frequency": "cron", "cron": "0 0 30 2 *"}}, ["recurrence.cron", "never fires"]),
        ("recurrence-until-before-due", "update_task", {"task_id": TASK, "recurrence": {"frequency": "daily", "until": PAST}}, ["recurrence.until", "before"]),
        ("clear-due-of-recurring-task", "update_task", {"task_id": TASK, "due": None}, ["recurring", "due"]),
        ("clear-due-under-relative-reminder", "update_task", {"task_id": TASK, "due": None, "recurrence": None}, ["reminders", "due"]),
        ("status-is-not-updatable", "update_task", {"task_id": TASK, "status": "completed"}, ["status"]),
        ("owner-is-not-updatable", "update_task", {"task_id": TASK, "owner": "someone-else"}, ["owner"]),
        ("description-wrong-type", "update_task", {"task_id": TASK, "description": 5}, ["expected a string"]),
        ("task-id-not-a-uuid", "update_task", {"task_id": "not-a-uuid", "title": "y"}, ["UUID"]),
        ("task-id-missing", "update_task", {"title": "y"}, ["task_id"]),
        ("task-id-unknown", "update_task", {"task_id": UNKNOWN, "title": "y"}, [UNKNOWN, "not found"]),
    ],
    "task_id": [
        (f"{tool}-{name}", tool, args, needles)
        for tool in ("get_task", "complete_task", "reopen_task", "delete_task")
        for name, args, needles in (
            ("not-a-uuid", {"task_id": "42"}, ["UUID"]),
            ("wrong-type", {"task_id": 42}, ["string"]),
            ("missing", {}, ["task_id"]),
            ("unknown", {"task_id": UNKNOWN}, [UNKNOWN, "not found", "list_tasks"]),
            ("extra-field", {"task_id": TASK, "force": True}, ["force"]),
        )
    ],
    "reminders": [
        ("at-in-the-past", "set_reminder", {"task_id": TASK, "at": PAST}, ["reminder", "past"]),
        ("minutes-before-past", "set_reminder", {"task_id": TASK, "minutes_before": 60 * 24 * 365 * 20}, ["minutes_before"]),
        ("both-fields", "set_reminder", {"task_id": TASK, "at": f"{Y}-01-01", "minutes_before": 5}, ["exactly one"]),
        ("no-field", "set_reminder", {"task_id": TASK}, ["exactly one"]),
        ("at-unreadable", "set_reminder", {"task_id": TASK, "at": "soonish"}, ["reminder", "soonish"]),
        ("minutes-negative", "set_reminder", {"task_id": TASK, "minutes_before": -5}, ["-5"]),
        ("unknown-task", "set_reminder", {"task_id": UNKNOWN, "minutes_before": 5}, [UNKNOWN, "not found"]),
        ("task-id-not-a-uuid", "set_reminder", {"task_id": "x", "minutes_before": 5}, ["UUID"]),
        ("extra-field", "set_reminder", {"task_id": TASK, "minutes_before": 5, "repeat": True}, ["repeat"]),
        ("cancel-unknown-reminder", "cancel_reminder", {"task_id": TASK, "reminder_id": UNKNOWN}, ["reminder", UNKNOWN, "not found"]),
        ("cancel-on-unknown-task", "cancel_reminder", {"task_id": UNKNOWN, "reminder_id": REMINDER}, [UNKNOWN, "not found"]),
        ("cancel-reminder-id-not-a-uuid", "cancel_reminder", {"task_id": TASK, "reminder_id": "r1"}, ["UUID"]),
        ("cancel-reminder-id-missing", "cancel_reminder", {"task_id": TASK}, ["reminder_id"]),
    ],
    "list_notifications": [
        ("limit-0", "list_notifications", {"limit": 0}, ["limit", "1 to 200"]),
        ("limit-201", "list_notifications", {"limit": 201}, ["limit", "201"]),
        ("unread-only-wrong-type", "list_notifications", {"unread_only": "yes"}, ["boolean"]),
        ("unknown-field", "list_notifications", {"since": "2020-01-01"}, ["since"]),
    ],
}


def fill(value: Any, task_id: str, reminder_id: str) -> Any:
    if value == TASK:
        return task_id
    if value == REMINDER:
        return reminder_id
    if isinstance(value, dict):
        return {k: fill(v, task_id, reminder_id) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, task_id, reminder_id) for v in value]
    return value


@pytest.mark.parametrize("group", list(CASES))
async def test_invalid_arguments_are_tool_errors_and_change_nothing(transport, group):
    async with transport.connect() as c:
        baseline = await get(c, (await add(c, **BASELINE))["id"])
        reminder_id = baseline["reminders"][0]["id"]
        failures = []
        for case_id, tool, args, needles in CASES[group]:
            try:
                message = await call_err(c, tool, fill(args, baseline["id"], reminder_id), *needles)
                listing = await list_all(c)
                assert listing["tasks"] == [baseline] and listing["total"] == 1, (
                    f"the failed call changed the task list: {json.dumps(listing)[:600]}"
                )
                assert "internal error" not in message.lower(), message
            except Exception as e:  # noqa: BLE001 - report every failing case at once
                failures.append(f"{case_id}: {type(e).__name__}: {e}")
        assert not failures, f"{len(failures)} case(s) failed:\n" + "\n".join(failures)


# Deserialisation errors (wrong JSON type, unknown enum value, malformed UUID) come straight from
# serde and do not say which argument is at fault.
TYPE_ERRORS = [
    ("add_task", {"title": 5}, "title"),
    ("add_task", {"title": "x", "priority": "urgent"}, "priority"),
    ("get_task", {"task_id": "not-a-uuid"}, "task_id"),
    ("list_tasks", {"limit": -1}, "limit"),
]


@pytest.mark.parametrize("transport", ["stdio-legacy"], indirect=True)
@pytest.mark.parametrize(("tool", "args", "field"), TYPE_ERRORS, ids=[f"{t}-{f}" for t, _, f in TYPE_ERRORS])
async def test_type_errors_name_the_argument(transport, tool, args, field):
    async with transport.connect() as c:
        message = await call_err(c, tool, args)
    assert f"`{field}`" in message or f"'{field}'" in message or f" {field}:" in message, message
