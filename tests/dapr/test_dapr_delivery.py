"""Task events leave through the outbox relay and the server's sidecar and reach another app."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from dapr_support import (
    TASKS_SOURCE,
    TOPIC_DEADLETTER,
    TOPIC_TASKS,
    TRACEPARENT,
    Y,
    Delivery,
    created_events,
    new_user,
    wait_until,
)


def test_add_task_event_reaches_a_subscriber_through_dapr(main, main_group, probe, infra):
    mcp = main.client(new_user())
    task = mcp.add_task(
        "Pay rent",
        description="before the 5th",
        due=f"{Y}-03-01T17:00",
        time_zone="Europe/Paris",
        tags=["home", "money"],
        priority="high",
        reminders=[{"minutes_before": 30}],
    )

    [d] = probe.wait_for(
        lambda ds: created_events(ds, {task["id"]}), 30, f"the created event of {task['id']}"
    )
    e = d.event
    assert d.topic == TOPIC_TASKS
    assert e["specversion"] == "1.0"
    assert e["type"] == "com.todo.task.created"
    assert e["source"] == TASKS_SOURCE
    assert e["subject"] == task["id"]
    assert uuid.UUID(e["id"]).version == 7, e["id"]
    assert e["datacontenttype"] == "application/json"
    # What the subscriber receives is exactly what the model read from add_task.
    assert e["data"] == {"task": task}
    datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
    # Dapr kept our envelope and added its routing and tracing attributes.
    assert e["pubsubname"] == "pubsub" and e["topic"] == TOPIC_TASKS
    assert TRACEPARENT.match(e.get("traceparent", "")), e.get("traceparent")
    assert TRACEPARENT.match(d.headers.get("traceparent", "")), d.headers
    assert d.headers.get("content-type", "").startswith("application/cloudevents+json"), d.headers

    # The event is the outbox row, now marked published.
    rows = infra.pg.run(
        main_group.database_url,
        f"SELECT envelope->>'id', published_at IS NOT NULL FROM outbox "
        f"WHERE subject = '{task['id']}'",
    ).split()
    assert rows == [f"{e['id']}|t"], rows
    wait_until(lambda: main.pending() == 0, 15, "an empty outbox")


def test_lifecycle_events_of_a_task_arrive_in_order(main, probe):
    mcp = main.client(new_user())
    task = mcp.add_task("Draft", due=f"{Y}-05-01")
    mcp.call("update_task", {"task_id": task["id"], "title": "Final"})
    mcp.call("complete_task", {"task_id": task["id"]})
    mcp.call("reopen_task", {"task_id": task["id"]})
    mcp.call("delete_task", {"task_id": task["id"]})
    expected = [
        "com.todo.task.created",
        "com.todo.task.updated",
        "com.todo.task.completed",
        "com.todo.task.updated",
        "com.todo.task.deleted",
    ]

    def of_task(ds: list[Delivery]) -> list[Delivery]:
        return [d for d in ds if d.topic == TOPIC_TASKS and d.subject == task["id"]]

    events = probe.wait_for(
        lambda ds: (e := of_task(ds)) and len({d.id for d in e}) >= len(expected) and e,
        30,
        "the five lifecycle events",
    )
    # At-least-once: drop redeliveries, keep the first arrival of each event.
    first: dict[str, Delivery] = {}
    for d in events:
        first.setdefault(d.id, d)
    assert [d.type for d in first.values()] == expected
    updated = list(first.values())[1].event["data"]
    assert updated["changes"]["title"] == {"from": "Draft", "to": "Final"}
    assert updated["task"]["title"] == "Final"
    deleted = list(first.values())[-1].event["data"]
    assert deleted["task"]["id"] == task["id"] and deleted["task"]["title"] == "Final"


def test_task_events_the_server_ignores_are_not_dead_lettered(main, probe):
    mcp = main.client(new_user())
    task = mcp.add_task("Nothing special")
    probe.wait_for(lambda ds: created_events(ds, {task["id"]}), 30, "the created event")
    try:
        dead = probe.wait_for(
            lambda ds: [d for d in ds if d.topic == TOPIC_DEADLETTER and d.subject == task["id"]],
            5,
            "a dead letter",
        )
    except AssertionError:
        dead = []
    assert not dead, f"the created event of an ordinary task was dead-lettered: {dead[0].event}"
