"""list_tasks: filters, search, sorting, totals and cursor paging."""

from __future__ import annotations

import base64
import itertools
import json

import pytest

from support import PAST, Y, add, call_err, call_ok, ids, list_all

pytestmark = pytest.mark.anyio


async def test_status_filter(transport):
    async with transport.connect() as c:
        pending = await add(c, "still to do")
        done = await add(c, "already done")
        await call_ok(c, "complete_task", {"task_id": done["id"]})

        default = await call_ok(c, "list_tasks", {})
        assert ids(default) == [pending["id"]] and default["total"] == 1
        assert "next_cursor" not in default or default["next_cursor"] is None
        assert ids(await call_ok(c, "list_tasks", {"status": "pending"})) == [pending["id"]]
        completed = await call_ok(c, "list_tasks", {"status": "completed"})
        assert ids(completed) == [done["id"]] and completed["total"] == 1
        everything = await call_ok(c, "list_tasks", {"status": "all"})
        # Newest first by default.
        assert ids(everything) == [done["id"], pending["id"]] and everything["total"] == 2


async def test_priority_filter(transport):
    async with transport.connect() as c:
        tasks = {p: await add(c, f"{p} task", priority=p) for p in ("high", "medium", "low")}
        default = await add(c, "default priority")
        for p, task in tasks.items():
            expected = [default["id"], task["id"]] if p == "medium" else [task["id"]]
            listing = await call_ok(c, "list_tasks", {"priority": p})
            assert ids(listing) == expected, p
            assert all(t["priority"] == p for t in listing["tasks"])


async def test_tags_must_all_match(transport):
    async with transport.connect() as c:
        both = await add(c, "both", tags=["Work", "urgent"])
        work = await add(c, "work only", tags=["work"])
        urgent = await add(c, "urgent only", tags=["urgent", "later"])
        await add(c, "no tags")

        async def tagged(tags):
            listing = await list_all(c, tags=tags)
            assert listing["total"] == len(listing["tasks"])
            return set(ids(listing))

        assert await tagged(["work"]) == {both["id"], work["id"]}
        assert await tagged(["urgent"]) == {both["id"], urgent["id"]}
        assert await tagged(["work", "urgent"]) == {both["id"]}
        assert await tagged([" URGENT", "Work "]) == {both["id"]}
        assert await tagged(["work", "later"]) == set()
        assert await tagged(["missing"]) == set()
        assert len(await tagged([])) == 4


async def test_tag_filter_given_twice_still_matches(transport):
    async with transport.connect() as c:
        task = await add(c, "tagged", tags=["work"])
        assert ids(await list_all(c, tags=["work", "Work"])) == [task["id"]]


async def test_search_is_case_insensitive_and_literal(transport):
    async with transport.connect() as c:
        sale = await add(c, "50% off sale")
        offers = await add(c, "5000 offers")
        underscore = await add(c, "under_score")
        await add(c, "underXscore")
        milk = await add(c, "Buy MILK")
        path = await add(c, "C:\\temp\\x")
        groceries = await add(c, "Groceries", description="Fresh Milk\nand eggs")
        await add(c, "unrelated")

        async def found(text):
            listing = await list_all(c, search=text)
            assert listing["total"] == len(listing["tasks"])
            return set(ids(listing))

        assert await found("milk") == {milk["id"], groceries["id"]}
        assert await found("  mIlK ") == {milk["id"], groceries["id"]}
        assert await found("EGGS") == {groceries["id"]}
        # `%` and `_` are not wildcards.
        assert await found("50%") == {sale["id"]}
        assert await found("%") == {sale["id"]}
        assert await found("under_score") == {underscore["id"]}
        assert await found("_") == {underscore["id"]}
        assert await found("500") == {offers["id"]}
        # So is the backslash (the LIKE escape character).
        assert await found("\\temp") == {path["id"]}
        assert await found("\\") == {path["id"]}
        assert await found("nothing like this") == set()
        # Blank search text means no search.
        assert len(await found("   ")) == 8


async def test_due_window(transport):
    async with transport.connect() as c:
        d1 = await add(c, "d1", due=f"{Y}-01-10T12:00:00Z")
        d2 = await add(c, "d2", due=f"{Y}-01-20T12:00:00Z")
        d3 = await add(c, "d3", due=f"{Y}-02-01T12:00:00Z")
        await add(c, "no due")

        async def window(**f):
            listing = await list_all(c, **f)
            assert listing["total"] == len(listing["tasks"])
            return set(ids(listing))

        # A date in due_after means the end of that day, in due_before its start.
        assert await window(due_after=f"{Y}-01-10") == {d2["id"], d3["id"]}
        assert await window(due_before=f"{Y}-01-20") == {d1["id"]}
        assert await window(due_after=f"{Y}-01-10", due_before=f"{Y}-02-01") == {d2["id"]}
        # Strict bounds.
        assert await window(due_after=f"{Y}-01-20T12:00:00Z") == {d3["id"]}
        assert await window(due_before=f"{Y}-01-20T12:00:00Z") == {d1["id"]}
        assert await window(due_before=f"{Y}-01-20T12:00:01Z") == {d1["id"], d2["id"]}
        # Local times are read in `time_zone` (UTC by default).
        assert await window(due_before=f"{Y}-01-20T08:00:01", time_zone="America/New_York") == {
            d1["id"],
            d2["id"],
        }
        assert await window(due_before=f"{Y}-01-20T08:00", time_zone="Asia/Tokyo") == {d1["id"]}
        assert await window(due_before=f"{Y}-01-20T12:00:01") == {d1["id"], d2["id"]}


async def test_overdue(transport):
    async with transport.connect() as c:
        late = await add(c, "late", due=PAST)
        late_done = await add(c, "late but done", due=PAST)
        await call_ok(c, "complete_task", {"task_id": late_done["id"]})
        future = await add(c, "future", due=f"{Y}-01-01")
        undated = await add(c, "undated")

        assert ids(await call_ok(c, "list_tasks", {"overdue": True})) == [late["id"]]
        assert ids(await list_all(c, overdue=True)) == [late["id"]]
        listing = await call_ok(c, "list_tasks", {"overdue": False})
        assert set(ids(listing)) == {late["id"], future["id"], undated["id"]}


@pytest.fixture
def sort_cases():
    # Created in this order: A, B, C, D, E.
    return [
        ("A", "banana", "low", f"{Y}-03-01T00:00:00Z"),
        ("B", "Apple", "high", None),
        ("C", "cherry", "medium", f"{Y}-01-01T00:00:00Z"),
        ("D", "date", "high", f"{Y}-02-01T00:00:00Z"),
        ("E", "Elder", "low", None),
    ]


SORTS = [
    # Default orders: newest, soonest due, most urgent, A to Z. Tasks without a due time come
    # last in both directions; ties are broken by id (creation order) in the sort's direction.
    ({}, "EDCBA"),
    ({"sort": "created"}, "EDCBA"),
    ({"sort": "created", "order": "asc"}, "ABCDE"),
    ({"order": "asc"}, "ABCDE"),
    ({"sort": "due"}, "CDABE"),
    ({"sort": "due", "order": "asc"}, "CDABE"),
    ({"sort": "due", "order": "desc"}, "ADCEB"),
    ({"sort": "priority"}, "DBCEA"),
    ({"sort": "priority", "order": "desc"}, "DBCEA"),
    ({"sort": "priority", "order": "asc"}, "AECBD"),
    ({"sort": "title"}, "BACDE"),
    ({"sort": "title", "order": "asc"}, "BACDE"),
    ({"sort": "title", "order": "desc"}, "EDCAB"),
]


async def test_sorting(transport, sort_cases):
    async with transport.connect() as c:
        names = {}
        for key, title, priority, due in sort_cases:
            fields = {"priority": priority} | ({"due": due} if due else {})
            names[(await add(c, title, **fields))["id"]] = key
        for args, expected in SORTS:
            listing = await call_ok(c, "list_tasks", args)
            got = "".join(names[i] for i in ids(listing))
            assert got == expected, f"{args}: {got} != {expected}"
            assert listing["total"] == 5


PAGINGS = [
    ("created", "desc"),
    ("created", "asc"),
    ("due", "asc"),
    ("due", "desc"),
    ("priority", "desc"),
    ("priority", "asc"),
    ("title", "asc"),
    ("title", "desc"),
]


def is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(x in it for x in short)


async def test_paging_sees_every_task_once_while_tasks_are_added(transport):
    priorities = itertools.cycle(["high", "low", "medium", "high"])
    dues = itertools.cycle([f"{Y}-01-05T00:00:00Z", None, f"{Y}-01-02T00:00:00Z", None, f"{Y}-01-05T00:00:00Z"])
    titles = itertools.cycle(["kiwi", "Apple", "mango", "apple", "Zucchini", "kiwi"])

    async with transport.connect() as c:

        async def add_one():
            fields = {"priority": next(priorities)}
            due = next(dues)
            if due:
                fields["due"] = due
            return (await add(c, next(titles), **fields))["id"]

        for _ in range(7):
            await add_one()
        for sort, order in PAGINGS:
            where = f"sort={sort} order={order}"
            full_query = {"sort": sort, "order": order, "status": "all", "limit": 200}
            original = ids(await call_ok(c, "list_tasks", full_query))
            query = {"sort": sort, "order": order, "limit": 3, "status": "all"}
            seen: list[str] = []
            added: list[str] = []
            cursor = None
            pages = 0
            while True:
                page = await call_ok(c, "list_tasks", query | ({"cursor": cursor} if cursor else {}))
                pages += 1
                assert len(page["tasks"]) <= 3, where
                if pages == 1:
                    assert page["total"] == len(original), where
                seen.extend(ids(page))
                cursor = page.get("next_cursor")
                if not cursor:
                    break
                assert len(page["tasks"]) == 3, where
                # A task added between pages must not shift the pages: nothing is seen twice
                # and nothing is lost.
                if pages <= 3:
                    added.append(await add_one())
                assert pages < 30, f"{where}: paging does not end"

            assert len(seen) == len(set(seen)), f"{where}: duplicates in {seen}"
            assert set(original) <= set(seen), f"{where}: missed {set(original) - set(seen)}"
            assert set(seen) <= set(original) | set(added), where
            full = await call_ok(c, "list_tasks", full_query)
            assert full["total"] == len(original) + len(added), where
            assert is_subsequence(seen, ids(full)), f"{where}: pages are not in the listing's order"


async def test_cursor_belongs_to_its_query(transport):
    async with transport.connect() as c:
        for i in range(3):
            await add(c, f"task {i}", priority="high", tags=["t"])
        first = await call_ok(c, "list_tasks", {"limit": 2, "tags": ["t"]})
        cursor = first["next_cursor"]
        assert cursor and first["total"] == 3 and len(first["tasks"]) == 2
        second = await call_ok(c, "list_tasks", {"limit": 2, "tags": ["t"], "cursor": cursor})
        assert len(second["tasks"]) == 1 and second.get("next_cursor") is None
        assert set(ids(first)).isdisjoint(ids(second))
        # The same cursor again gives the same page.
        assert await call_ok(c, "list_tasks", {"limit": 2, "tags": ["t"], "cursor": cursor}) == second
        # A different page size is fine; other filters or another sort are not.
        assert ids(await call_ok(c, "list_tasks", {"limit": 5, "tags": ["t"], "cursor": cursor})) == ids(second)
        for other in ({"tags": ["u"]}, {"priority": "high", "tags": ["t"]}, {"sort": "title", "tags": ["t"]}, {"order": "asc", "tags": ["t"]}, {"tags": ["t"], "status": "all"}):
            await call_err(c, "list_tasks", {"limit": 2, "cursor": cursor, **other}, "cursor")
        forged = base64.urlsafe_b64encode(json.dumps({"s": "created"}).encode()).rstrip(b"=").decode()
        await call_err(c, "list_tasks", {"cursor": forged}, "cursor")


async def test_total_counts_all_pages(transport):
    async with transport.connect() as c:
        for i in range(5):
            await add(c, f"t{i}")
        page = await call_ok(c, "list_tasks", {"limit": 1})
        assert page["total"] == 5 and len(page["tasks"]) == 1 and page["next_cursor"]
        page = await call_ok(c, "list_tasks", {"limit": 200})
        assert page["total"] == 5 and len(page["tasks"]) == 5 and page.get("next_cursor") is None
