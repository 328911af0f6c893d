"""Users are isolated: another user's task is "not found" by every tool and invisible in lists.

Over HTTP the user is the token's subject; over stdio it is `--user`, here two servers on the
same SQLite file.
"""

from __future__ import annotations

import pytest

from support import Y, add, call_err, call_ok, get, ids, list_all, new_user

pytestmark = pytest.mark.anyio


async def test_other_users_tasks_are_not_found_and_not_listed(transport):
    alice, bob = transport.user, new_user()
    async with transport.connect(alice) as a, transport.connect(bob) as b:
        secret = await add(
            a,
            "alice-secret-zebra",
            description="alice only",
            due=f"{Y}-01-15T17:00:00Z",
            tags=["private"],
            reminders=[{"minutes_before": 30}],
        )
        await add(a, "alice-secret-second", tags=["private"])
        done = await add(a, "alice-secret-done")
        await call_ok(a, "complete_task", {"task_id": done["id"]})
        assert secret["owner"] == alice
        before = {t["id"]: t for t in (await list_all(a))["tasks"]}
        reminder = secret["reminders"][0]["id"]
        a_page = await call_ok(a, "list_tasks", {"limit": 1, "status": "all"})
        a_cursor = a_page["next_cursor"]
        assert a_cursor and a_page["total"] == 3

        own = await add(b, "bob's own", tags=["private"], due=f"{Y}-02-01T00:00:00Z")
        assert own["owner"] == bob

        for task_id in (secret["id"], done["id"]):
            not_found = [task_id, "not found"]
            await call_err(b, "get_task", {"task_id": task_id}, *not_found)
            await call_err(b, "update_task", {"task_id": task_id, "title": "pwned"}, *not_found)
            await call_err(b, "update_task", {"task_id": task_id}, *not_found)
            await call_err(b, "complete_task", {"task_id": task_id}, *not_found)
            await call_err(b, "reopen_task", {"task_id": task_id}, *not_found)
            await call_err(b, "set_reminder", {"task_id": task_id, "at": f"{Y}-01-01T00:00:00Z"}, *not_found)
            await call_err(b, "set_reminder", {"task_id": task_id, "minutes_before": 5}, *not_found)
            await call_err(b, "cancel_reminder", {"task_id": task_id, "reminder_id": reminder}, *not_found)
            await call_err(b, "delete_task", {"task_id": task_id}, *not_found)
        # Alice's reminder cannot be cancelled through one of Bob's tasks either.
        await call_err(b, "cancel_reminder", {"task_id": own["id"], "reminder_id": reminder}, "not found")

        # Bob's lists show only his task, whatever the filters.
        listing = await list_all(b)
        assert ids(listing) == [own["id"]] and listing["total"] == 1
        for filters in ({"search": "alice"}, {"search": "zebra"}, {"tags": ["private"]}, {"status": "completed"},
                        {"due_before": f"{Y}-12-31"}, {"sort": "title"}):
            listing = await list_all(b, **filters)
            assert set(ids(listing)) <= {own["id"]}, filters
            assert all(t["owner"] == bob for t in listing["tasks"]), filters
        assert (await list_all(b, search="alice"))["total"] == 0
        # Alice's cursor (same filters) does not open her list to Bob.
        page = await call_ok(b, "list_tasks", {"limit": 1, "status": "all", "cursor": a_cursor})
        assert set(ids(page)) <= {own["id"]} and page["total"] == 1
        assert (await call_ok(b, "list_notifications", {"mark_read": True}))["unread"] == 0

        # Nothing of Alice's changed, and Bob's attempts did not create anything for her.
        after = {t["id"]: t for t in (await list_all(a))["tasks"]}
        assert after == before
        assert await get(a, secret["id"]) == before[secret["id"]]
        assert ids(await list_all(b)) == [own["id"]]


async def test_same_title_for_two_users_stays_separate(transport):
    alice, bob = transport.user, new_user()
    async with transport.connect(alice) as a:
        mine = await add(a, "Shared title", tags=["same"])
    async with transport.connect(bob) as b:
        theirs = await add(b, "Shared title", tags=["same"])
        await call_ok(b, "complete_task", {"task_id": theirs["id"]})
        await call_ok(b, "update_task", {"task_id": theirs["id"], "tags": ["changed"]})
    async with transport.connect(alice) as a:
        assert mine["id"] != theirs["id"]
        listing = await list_all(a, tags=["same"])
        assert ids(listing) == [mine["id"]]
        assert listing["tasks"][0]["status"] == "pending"
        assert await get(a, mine["id"]) == listing["tasks"][0]
