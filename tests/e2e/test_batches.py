"""Batches: add_tasks, and task_ids on complete_task, reopen_task and delete_task.

Each item is checked and applied on its own: a bad one gets its own error in `results`, in its
place, and the others are applied, each with its event. A batch where nothing applies is an
`isError` result that gives each item's reason.
"""

from __future__ import annotations

import uuid

import pytest

from support import Y, add, assert_task_shape, call_err, call_ok, list_all

pytestmark = pytest.mark.anyio


def outcomes(out: dict) -> list[str | None]:
    """Each item's error, or None where it succeeded, in order."""
    assert [r["index"] for r in out["results"]] == list(range(len(out["results"])))
    errors = [r.get("error") for r in out["results"]]
    assert out["failed"] == sum(e is not None for e in errors)
    assert out["succeeded"] == len(errors) - out["failed"]
    return errors


async def test_add_tasks_creates_each_valid_task_and_reports_each_bad_one(transport):
    async with transport.connect() as c:
        tasks = [
            {"title": "Agenda", "tags": ["meeting"], "due": f"{Y}-03-01T09:00", "priority": "high"},
            {"title": "Notes", "due": "next tuesday"},
            {"title": "", "priority": "high"},
            {"title": "Minutes", "colour": "red"},
            {"title": "Follow up", "reminders": [{"minutes_before": 30}], "due": f"{Y}-03-02T10:00"},
        ]
        out = await call_ok(c, "add_tasks", {"tasks": tasks})
        errors = outcomes(out)
        assert errors[0] is None and errors[4] is None
        assert "`tasks[1].due`" in errors[1] and "next tuesday" in errors[1], errors[1]
        assert "`tasks[2].title`" in errors[2], errors[2]
        assert "`tasks[3].colour`" in errors[3] and "unknown field" in errors[3], errors[3]
        created = [r["task"] for r in out["results"] if r.get("task")]
        for task in created:
            assert_task_shape(task)
        assert [t["title"] for t in created] == ["Agenda", "Follow up"]
        assert created[0]["tags"] == ["meeting"] and len(created[1]["reminders"]) == 1

        listed = await list_all(c)
        assert sorted(t["title"] for t in listed["tasks"]) == ["Agenda", "Follow up"]


async def test_a_batch_where_nothing_applies_is_an_error_naming_each_reason(transport):
    async with transport.connect() as c:
        await call_err(
            c,
            "add_tasks",
            {"tasks": [{"title": ""}, {"due": "tomorrow"}]},
            "none of the 2 tasks",
            "tasks[0]",
            "tasks[1]",
        )
        await call_err(c, "add_tasks", {"tasks": []}, "tasks", "1 to 50")
        await call_err(c, "add_tasks", {"tasks": [{"title": f"T{i}"} for i in range(51)]}, "tasks", "1 to 50", "51")
        assert (await list_all(c))["tasks"] == []


async def test_task_ids_complete_reopen_and_delete_each_task_on_its_own(transport):
    async with transport.connect() as c:
        ids = [(await add(c, f"Errand {i}"))["id"] for i in range(3)]
        unknown = str(uuid.uuid4())

        done = await call_ok(c, "complete_task", {"task_ids": [ids[0], unknown, "not-an-id", ids[1]]})
        errors = outcomes(done)
        assert errors[0] is None and errors[3] is None
        assert unknown in errors[1] and "not found" in errors[1], errors[1]
        assert "`task_ids[2]`" in errors[2], errors[2]
        assert [r["task"]["status"] for r in done["results"] if r.get("task")] == ["completed"] * 2
        pending = await call_ok(c, "list_tasks", {})
        assert [t["id"] for t in pending["tasks"]] == [ids[2]]

        reopened = await call_ok(c, "reopen_task", {"task_ids": [ids[0], ids[2]]})
        assert outcomes(reopened) == [None, None]
        assert [sorted(r["changed"]) for r in reopened["results"]] == [["completed_at", "status"], []]

        deleted = await call_ok(c, "delete_task", {"task_ids": ids})
        assert outcomes(deleted) == [None, None, None]
        assert sorted(r["deleted"]["id"] for r in deleted["results"]) == sorted(ids)
        assert (await list_all(c, status="all"))["tasks"] == []
        # Everything gone: a second time, nothing applies.
        await call_err(c, "delete_task", {"task_ids": ids}, "none of the 3 task_ids", "not found")


async def test_task_id_or_task_ids_not_both_nor_neither(transport):
    async with transport.connect() as c:
        task = await add(c, "Lonely")
        await call_err(c, "complete_task", {"task_id": task["id"], "task_ids": [task["id"]]}, "not both")
        await call_err(c, "complete_task", {}, "task_id", "required", "task_ids")
        await call_err(c, "delete_task", {"task_ids": []}, "task_ids", "1 to 50")
        # The single form answers as it always has.
        out = await call_ok(c, "complete_task", {"task_id": task["id"]})
        assert out["task"]["status"] == "completed" and "results" not in out


async def test_batches_touch_only_the_callers_tasks(transport):
    async with transport.connect() as alice:
        mine = (await add(alice, "Alice's"))["id"]
    async with transport.connect(user=f"{transport.user}-bob") as bob:
        theirs = (await add(bob, "Bob's"))["id"]
        out = await call_ok(bob, "delete_task", {"task_ids": [theirs, mine]})
        errors = outcomes(out)
        assert errors[0] is None and "not found" in errors[1]
    async with transport.connect() as alice:
        assert [t["id"] for t in (await list_all(alice))["tasks"]] == [mine]
        assert (await call_ok(alice, "get_task", {"task_id": mine}))["task"]["status"] == "pending"
