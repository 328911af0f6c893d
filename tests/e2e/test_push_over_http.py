"""Reminders pushed to HTTP clients, within a second of firing, to their user only.

- 2026-07-28 over streamable HTTP: `subscriptions/listen` for `todo://notifications` gives
  `resources/updated` on the listen stream; the resource then holds the notification.
- HTTP+SSE sessions: `resources/subscribe` gives `notifications/resources/updated` on the
  session's stream, and `logging/setLevel` the log message stdio clients get.
- Handshake-era streamable HTTP: the user's `GET /mcp` stream carries the log message, and
  `resources/updated` once the user subscribed (`resources/subscribe`, kept per user).

The reminders fire for real: the HTTP server's embedded scheduler fires them at their time, the
notification is recorded and announced through PostgreSQL (NOTIFY), and the replica holding
the client's stream pushes it. Another replica's announcement is the same NOTIFY (tested below
with a second server process on the same database).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import anyio
import httpx2
import pytest
from mcp import MCPError

from conftest import HttpServer
from support import call_ok, mint_token, new_user

pytestmark = [
    pytest.mark.anyio,
    # Handshake-era clients use what 2026-07-28 deprecates; so do these tests, on purpose.
    pytest.mark.filterwarnings("ignore:.*(resources/subscribe|resources/unsubscribe|logging capability)"),
]

URI = "todo://notifications"


def soon(seconds: float = 2.0) -> tuple[str, float]:
    """A reminder time `seconds` ahead (RFC 3339), and the same as a Unix time."""
    at = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return at.isoformat(timespec="milliseconds"), at.timestamp()


async def add_with_reminder(client, title: str, seconds: float = 2.0) -> tuple[dict, float]:
    at, when = soon(seconds)
    task = (await call_ok(client, "add_task", {"title": title, "reminders": [{"at": at}]}))["task"]
    return task, when


async def unread(client) -> dict:
    result = await client.read_resource(URI)
    (contents,) = result.contents
    assert contents.uri == URI and contents.mime_type == "application/json"
    return json.loads(contents.text)


async def test_listen_pushes_a_users_reminders_as_they_fire(transport):
    if transport.name != "http-auto":
        pytest.skip("subscriptions/listen: 2026-07-28 over streamable HTTP (stdio is tested below)")
    async with transport.connect() as alice, transport.connect(user=new_user()) as bob:
        resources = (await alice.list_resources()).resources
        assert [r.uri for r in resources] == [URI]
        assert (await unread(alice))["notifications"] == []
        async with alice.listen(resource_subscriptions=[URI]) as sub:
            await add_with_reminder(bob, "Bob's, not alice's", 1.0)
            task, when = await add_with_reminder(alice, "Water the plants")
            with anyio.fail_after(10):
                event = await sub.__anext__()
            lateness = time.time() - when
            assert event.uri == URI
            assert -0.05 < lateness < 1.0, f"pushed {lateness:.3f} s after the reminder's time"
            shown = await unread(alice)
            assert [n["task_id"] for n in shown["notifications"]] == [task["id"]]
            assert shown["unread"] == 1
            # Bob's reminder, due earlier, was never pushed to alice.
            with anyio.move_on_after(1.0):
                extra = await sub.__anext__()
                pytest.fail(f"a second update reached alice: {extra}")


async def test_an_sse_session_gets_resource_updates_and_log_messages(transport):
    if transport.name != "sse-legacy":
        pytest.skip("HTTP+SSE sessions")
    updates: list[tuple[str, float]] = []
    logs: list = []

    async def on_message(message) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            updates.append((message.params.uri, time.time()))

    async def on_log(params) -> None:
        logs.append((params, time.time()))

    async with transport.connect(message_handler=on_message, logging_callback=on_log) as alice:
        await alice.subscribe_resource(URI)
        await alice.set_logging_level("info")
        task, when = await add_with_reminder(alice, "Call the plumber")
        with anyio.fail_after(10):
            while not (updates and logs):
                await anyio.sleep(0.02)
        await anyio.sleep(0.5)  # time for a duplicate to show up
        assert [u for u, _ in updates] == [URI]
        assert updates[0][1] - when < 1.0
        (log, at), = logs
        assert log.logger == "todo.reminders" and at - when < 1.0
        assert log.data["task_id"] == task["id"] and log.data["title"] == "Call the plumber"
        assert [n["task_id"] for n in (await unread(alice))["notifications"]] == [task["id"]]

        # Unsubscribed, the resource updates stop; the log messages go on.
        await alice.unsubscribe_resource(URI)
        await add_with_reminder(alice, "Take out the bins", 1.0)
        with anyio.fail_after(10):
            while len(logs) < 2:
                await anyio.sleep(0.02)
        await anyio.sleep(0.3)
        assert len(updates) == 1


async def read_events(response, into: list[dict]) -> None:
    """Appends each JSON-RPC message of an SSE response to `into`."""
    async for line in response.aiter_lines():
        if line.startswith("data:") and line[5:].strip():
            into.append(json.loads(line[5:]))


async def test_a_handshake_era_client_hears_its_reminders_on_its_event_stream(transport):
    """Over stateless streamable HTTP a handshake-era client's `GET /mcp` stream is its user's:
    each new reminder comes as a log message, and as `resources/updated` once the user
    subscribed to the resource (kept per user, so any replica's stream follows it)."""
    if transport.name != "http-legacy":
        pytest.skip("handshake-era streamable HTTP")
    alice, bob = transport.user, new_user()
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {mint_token(alice)}"}
    received: list[dict] = []
    async with httpx2.AsyncClient(timeout=30) as h, transport.connect() as c:
        async with h.stream("GET", transport.http.url, headers=headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            async with anyio.create_task_group() as tg:
                tg.start_soon(read_events, stream, received)
                async with transport.connect(user=bob) as b:
                    await add_with_reminder(b, "Bob's, not alice's", 1.0)
                task, when = await add_with_reminder(c, "Feed the cat", 1.5)
                with anyio.fail_after(10):
                    while not received:
                        await anyio.sleep(0.02)
                arrived = time.time()
                await c.subscribe_resource(URI)
                second, _ = await add_with_reminder(c, "Feed the cat again", 1.0)
                with anyio.fail_after(10):
                    while len(received) < 3:
                        await anyio.sleep(0.02)
                await anyio.sleep(0.5)  # time for anything wrongly routed to show up
                tg.cancel_scope.cancel()
    assert arrived - when < 1.0
    methods = [m["method"] for m in received]
    assert methods == ["notifications/message", "notifications/message", "notifications/resources/updated"]
    assert [m["params"]["data"]["task_id"] for m in received[:2]] == [task["id"], second["id"]]
    assert received[0]["params"]["logger"] == "todo.reminders"
    assert received[2]["params"]["uri"] == URI
    async with transport.connect() as c:
        await c.unsubscribe_resource(URI)
        with pytest.raises(MCPError):
            await c.read_resource("todo://elsewhere")


async def test_the_python_sdk_in_handshake_mode_hears_its_reminders(transport):
    """The SDK opens its `GET /mcp` stream once the `initialize` answer names a session id."""
    if transport.name != "http-legacy":
        pytest.skip("handshake-era streamable HTTP")
    logs: list = []

    async def on_log(params) -> None:
        logs.append((params, time.time()))

    async with transport.connect(logging_callback=on_log) as c:
        task, when = await add_with_reminder(c, "Call the vet")
        with anyio.fail_after(10):
            while not logs:
                await anyio.sleep(0.02)
        (log, at), = logs
        assert log.logger == "todo.reminders" and log.data["task_id"] == task["id"]
        assert at - when < 1.0


async def test_a_reminder_recorded_by_another_replica_is_pushed(http, binary, database_url, tmp_path):
    """Two server processes on one database: a client listening on the second hears the reminder
    whichever one fires and records it, as the announcement goes through the database."""
    other = HttpServer(binary, database_url, tmp_path / "replica.log").start()
    try:
        from conftest import Transport

        on_other = Transport(kind="http", mode="auto", binary=binary, user=new_user(), logs=[], http=other)
        on_first = Transport(kind="http", mode="auto", binary=binary, user=on_other.user, logs=[], http=http)
        async with on_other.connect() as listener, on_first.connect() as writer:
            async with listener.listen(resource_subscriptions=[URI]) as sub:
                task, when = await add_with_reminder(writer, "Across replicas")
                with anyio.fail_after(10):
                    event = await sub.__anext__()
                assert event.uri == URI and time.time() - when < 1.0
                shown = await unread(listener)
                assert [n["task_id"] for n in shown["notifications"]] == [task["id"]]
    finally:
        other.stop()
