"""A fired reminder reaches a connected stdio client as an MCP notification.

The reminder is fired the way the embedded scheduler fires it: a `com.todo.reminder.triggered`
CloudEvent enters the outbox, the server's relay delivers it to its in-process consumer, which
stores the notification and pushes it to the client of that user (logger `todo.reminders`).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from support import call_ok, new_user

pytestmark = pytest.mark.anyio


def fire_reminder(db: Path, owner: str, task_id: str, title: str) -> str:
    """Writes a reminder.triggered event into the outbox, as the embedded scheduler does."""
    now = datetime.now(timezone.utc)
    event_id = uuid.uuid4()
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": "/scheduler",
        "type": "com.todo.reminder.triggered",
        "subject": task_id,
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "owner": owner,
            "task_id": task_id,
            "reminder_id": str(uuid.uuid4()),
            "title": title,
            "fire_at": now.isoformat(),
            "due": None,
        },
    }
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute(
            "INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                event_id.bytes,
                "notifications",
                "com.todo.reminder.triggered",
                uuid.UUID(task_id).bytes,
                json.dumps(envelope),
                now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            ),
        )
    return str(event_id)


async def test_a_fired_reminder_is_pushed_to_its_user_only(binary, tmp_path):
    db = tmp_path / "todo.db"
    alice, bob = new_user(), new_user()
    received: list = []

    async def on_log(params) -> None:
        received.append(params)

    params = StdioServerParameters(
        command=binary,
        args=["--user", alice, "--database-url", f"sqlite://{db}"],
        env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")},
    )
    with open(tmp_path / "server.log", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy", logging_callback=on_log) as c:
            task = (await call_ok(c, "add_task", {"title": "Call the plumber"}))["task"]
            fire_reminder(db, bob, task["id"], "Not for alice")
            fire_reminder(db, alice, task["id"], "Call the plumber")

            with anyio.fail_after(10):
                while not any(getattr(p, "logger", None) == "todo.reminders" for p in received):
                    await anyio.sleep(0.05)
            await anyio.sleep(0.5)  # time for a wrongly routed second message to show up

            pushed = [p for p in received if getattr(p, "logger", None) == "todo.reminders"]
            assert len(pushed) == 1, pushed
            data = pushed[0].data
            assert data["title"] == "Call the plumber"
            assert data["task_id"] == task["id"]
            assert data["message"] == 'Reminder: "Call the plumber"'
            assert data["read"] is False

            listing = await call_ok(c, "list_notifications", {})
            assert [n["id"] for n in listing["notifications"]] == [data["id"]]
            assert listing["unread"] == 1
