"""The scheduler embedded in `todo-mcp`: reminders and recurring tasks fire on time, on their own.

With no Dapr sidecar (stdio, SQLite here) the server runs the reminder/recurrence engine itself:

- at a reminder's time it records a notification (`list_notifications`) and pushes it to the
  connected stdio client of that user as an MCP log message (logger `todo.reminders`);
- when an occurrence of a recurring task falls due, the next occurrence is created as a new
  task (same local wall-clock time in the task's time zone, same series);
- its jobs are durable in the database: what fell due while the server was down fires when it
  starts again, and nothing fires twice.

Every test starts its own server(s) on its own SQLite file, with real clocks: reminder times are
whole seconds a few seconds ahead, and the tolerances allow for a busy 2-core machine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import SERVER_LOG_LEVEL
from support import add, call_ok, get, list_all, new_user, parse_ts

pytestmark = pytest.mark.anyio

LOGGER = "todo.reminders"
# A notification reaches the client at most this long after its time ...
MAX_LATE = 1.0
# ... and never before it (slack for the timestamps taken in two processes).
MAX_EARLY = 0.05
NEW_YORK = ZoneInfo("America/New_York")


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class Pushed:
    """The `todo.reminders` log messages a client received, with the wall-clock time of each."""

    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    async def on_log(self, params: Any) -> None:
        received = time.time()
        if getattr(params, "logger", None) == LOGGER:
            self.messages.append((received, params.data))

    @property
    def data(self) -> list[dict[str, Any]]:
        return [d for _, d in self.messages]

    async def wait_for(self, count: int, until: float) -> None:
        """Waits until `count` messages arrived or the wall clock passes `until` (epoch seconds)."""
        while len(self.messages) < count and time.time() < until:
            await anyio.sleep(0.02)


@dataclass
class Server:
    """Starts `todo-mcp` over stdio for one user on one SQLite file; each start logs to its file."""

    binary: str
    tmp: Path
    logs: list[tuple[str, Path]]
    user: str = field(default_factory=new_user)
    starts: int = 0

    @property
    def db(self) -> Path:
        return self.tmp / "todo.db"

    @contextlib.asynccontextmanager
    async def connect(self, pushed: Pushed | None = None) -> AsyncIterator[Client]:
        self.starts += 1
        log = self.tmp / f"server-{self.starts}.log"
        self.logs.append((f"stdio start #{self.starts}", log))
        params = StdioServerParameters(
            command=self.binary,
            args=["--user", self.user, "--database-url", f"sqlite://{self.db}"],
            env={
                "HOME": str(self.tmp),
                "XDG_DATA_HOME": str(self.tmp / "data"),
                "RUST_LOG": SERVER_LOG_LEVEL,
            },
        )
        callback = pushed.on_log if pushed is not None else None
        with open(log, "w") as errlog:
            async with Client(
                stdio_client(params, errlog=errlog), mode="legacy", logging_callback=callback
            ) as client:
                yield client


@pytest.fixture
def server(binary: str, tmp_path: Path, _server_logs: list[tuple[str, Path]]) -> Server:
    return Server(binary, tmp_path, _server_logs)


def whole_seconds_ahead(seconds: int) -> datetime:
    """A UTC time on a whole second, at least `seconds` (and less than `seconds + 1`) from now."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=0) + timedelta(seconds=seconds + 1)


async def sleep_until(t: datetime) -> None:
    await anyio.sleep(max(0.0, t.timestamp() - time.time()))


async def notifications(client: Client) -> list[dict[str, Any]]:
    out = await call_ok(client, "list_notifications", {"limit": 200})
    return out["notifications"]


async def wait_for_notifications(client: Client, count: int, until: float) -> list[dict[str, Any]]:
    """Polls `list_notifications` until it holds `count` entries or the wall clock passes `until`."""
    while True:
        found = await notifications(client)
        if len(found) >= count or time.time() >= until:
            return found
        await anyio.sleep(0.05)


def assert_on_time(notification: dict[str, Any], at: datetime) -> None:
    """The notification is for a reminder due `at`, recorded within `MAX_LATE` of it, not before."""
    fire_at = parse_ts(notification["fire_at"])
    assert fire_at == at, (notification["fire_at"], at.isoformat())
    lag = (parse_ts(notification["created_at"]) - fire_at).total_seconds()
    assert -MAX_EARLY <= lag <= MAX_LATE, f"recorded {lag:.3f}s after its time: {notification}"


# --- tests --------------------------------------------------------------------------------------


async def test_a_reminder_fires_on_time_and_reaches_the_connected_client(server: Server):
    """A reminder a few seconds ahead fires at its time, once: the connected client receives it
    as a `todo.reminders` log message no later than 1 s after the reminder's time (and never
    before), and `list_notifications` shows the same notification, recorded on time and unread.
    """
    pushed = Pushed()
    async with server.connect(pushed) as c:
        at = whole_seconds_ahead(3)
        task = await add(c, "Water the plants", reminders=[{"at": at.isoformat()}])
        [reminder] = task["reminders"]
        assert parse_ts(reminder["at"]) == at
        assert await notifications(c) == [], "nothing may fire before the reminder's time"

        await pushed.wait_for(1, until=at.timestamp() + MAX_LATE + 2)
        assert pushed.messages, f"no {LOGGER} message within {MAX_LATE + 2}s of {at.isoformat()}"
        received, data = pushed.messages[0]
        lateness = received - at.timestamp()
        assert -MAX_EARLY <= lateness <= MAX_LATE, (
            f"pushed {lateness:+.3f}s from the reminder's time {at.isoformat()}"
        )
        assert (data["task_id"], data["reminder_id"], data["title"]) == (
            task["id"],
            reminder["id"],
            "Water the plants",
        )
        assert data["read"] is False
        assert_on_time(data, at)

        await anyio.sleep(0.5)  # room for a wrong second firing to show up
        assert len(pushed.messages) == 1, pushed.data
        listing = await call_ok(c, "list_notifications", {})
        assert listing["notifications"] == [data]
        assert listing["unread"] == 1


async def test_a_recurring_task_gets_its_next_occurrence_when_it_falls_due(server: Server):
    """A daily task in America/New_York due a few seconds ahead: when it falls due (within
    1.5 s) a second task appears, due one day later at the same local wall-clock time (also
    across a DST change), in the same series, pending, and with the template's relative reminder
    carried over to the new due time. The first occurrence itself stays as it was.
    """
    async with server.connect() as c:
        due = whole_seconds_ahead(3).astimezone(NEW_YORK)
        template = await add(
            c,
            "Standup notes",
            due=due.isoformat(),
            time_zone="America/New_York",
            recurrence={"frequency": "daily"},
            reminders=[{"minutes_before": 0}],
        )
        assert parse_ts(template["due"]) == due
        assert template["recurrence"]["series_id"] is not None
        assert [r["minutes_before"] for r in template["reminders"]] == [0]
        assert (await list_all(c))["total"] == 1

        deadline = due.timestamp() + 1.5
        while True:
            listing = await list_all(c)
            if listing["total"] >= 2 or time.time() >= deadline:
                break
            await anyio.sleep(0.05)
        assert listing["total"] == 2, f"no next occurrence 1.5s after {due.isoformat()}: {listing}"
        assert len(listing["tasks"]) == 2
        [nxt] = [t for t in listing["tasks"] if t["id"] != template["id"]]

        # Created when the first occurrence fell due, not before.
        created = parse_ts(nxt["created_at"]).timestamp()
        assert created >= due.timestamp() - MAX_EARLY, (nxt["created_at"], due.isoformat())

        # One day later, same local time: compare the RFC 3339 strings' date and time-of-day.
        assert nxt["due"][:10] == (due.date() + timedelta(days=1)).isoformat(), nxt["due"]
        assert nxt["due"][11:19] == template["due"][11:19], (nxt["due"], template["due"])
        # ... and the instant is that local time in New York (the offset may differ across DST).
        expected = datetime.combine(due.date() + timedelta(days=1), due.time(), NEW_YORK)
        assert parse_ts(nxt["due"]) == expected, (nxt["due"], expected.isoformat())

        assert nxt["status"] == "pending"
        assert nxt["completed_at"] is None
        assert nxt["title"] == "Standup notes"
        assert nxt["time_zone"] == "America/New_York"
        assert nxt["recurrence"]["series_id"] == template["recurrence"]["series_id"]
        assert nxt["recurrence"]["rule"] == template["recurrence"]["rule"]

        # The relative reminder moved with the due time, as a reminder of its own.
        [reminder] = nxt["reminders"]
        assert reminder["minutes_before"] == 0
        assert parse_ts(reminder["at"]) == expected
        assert reminder["id"] != template["reminders"][0]["id"]

        # The first occurrence is untouched.
        first = await get(c, template["id"])
        assert (first["due"], first["status"]) == (template["due"], "pending")


async def test_what_fell_due_while_down_fires_once_after_a_restart(server: Server):
    """Jobs outlive the process: a reminder whose time passes while the server is down fires
    when it starts again (recorded within ~3 s of the start, pushed to the newly connected
    client), a reminder still in the future does not, and a further restart fires nothing again.
    """
    async with server.connect() as c:
        at = whole_seconds_ahead(4)
        later = whole_seconds_ahead(60)
        soon = await add(c, "Take out the bins", reminders=[{"at": at.isoformat()}])
        await add(c, "Much later", reminders=[{"at": later.isoformat()}])
        assert await notifications(c) == []
    stopped = time.time()
    assert stopped < at.timestamp() - 0.5, "the server must be down before the reminder's time"

    await sleep_until(at + timedelta(seconds=2))

    pushed = Pushed()
    started = time.time()
    async with server.connect(pushed) as c:
        await wait_for_notifications(c, 1, until=started + 3)
        await pushed.wait_for(1, until=started + 3)
        await anyio.sleep(0.5)  # room for a wrong second firing to show up
        found = await notifications(c)

        assert len(found) == 1, f"want exactly the overdue reminder's notification: {found}"
        [n] = found
        assert (n["task_id"], n["reminder_id"]) == (soon["id"], soon["reminders"][0]["id"])
        assert parse_ts(n["fire_at"]) == at
        recorded = parse_ts(n["created_at"]).timestamp()
        assert started - MAX_EARLY <= recorded <= started + 3, (
            f"recorded {recorded - started:+.3f}s from the restart (not while the server was down)"
        )
        assert pushed.data == [n], "the overdue notification is pushed to the new client, once"

    pushed_again = Pushed()
    async with server.connect(pushed_again) as c:
        await anyio.sleep(1.5)  # time for a wrong second firing to show up
        assert await notifications(c) == [n]
        assert pushed_again.messages == []


async def test_deleted_and_completed_tasks_do_not_remind(server: Server):
    """Deleting a task or completing it cancels its pending reminders: past their time (+1.5 s)
    neither has a notification, while a control task's reminder at the same time does fire.
    """
    pushed = Pushed()
    async with server.connect(pushed) as c:
        at = whole_seconds_ahead(3)
        reminders = [{"at": at.isoformat()}]
        deleted = await add(c, "Deleted", reminders=reminders)
        completed = await add(c, "Completed", reminders=reminders)
        control = await add(c, "Control", reminders=reminders)
        await call_ok(c, "delete_task", {"task_id": deleted["id"]})
        out = await call_ok(c, "complete_task", {"task_id": completed["id"]})
        assert out["task"]["status"] == "completed"
        assert time.time() < at.timestamp(), "the setup took longer than the reminders' lead"

        await sleep_until(at + timedelta(seconds=1.5))
        found = await notifications(c)
        assert [n["task_id"] for n in found] == [control["id"]], found
        assert_on_time(found[0], at)
        assert [d["task_id"] for d in pushed.data] == [control["id"]]
