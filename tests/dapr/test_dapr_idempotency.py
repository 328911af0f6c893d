"""Events delivered to the server through its sidecar: each has one effect however often it comes,
and events that can never be processed go to the dead-letter topic."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest

from dapr_support import (
    RECURRING,
    REMINDER,
    TOPIC_DEADLETTER,
    TOPIC_NOTIFICATIONS,
    TOPIC_TASKS,
    Y,
    Delivery,
    Mcp,
    cloud_event,
    created_events,
    new_user,
    notification_id,
    processed,
    recurring_series,
    reminder_triggered,
    scheduled,
    wait_until,
)

# How long to let a duplicate that is already in flight land before counting effects.
SETTLE = 1.5


def copies(probe, topic: str, event_id: str, n: int, timeout: float = 30) -> list[Delivery]:
    """Waits until the probe has seen `n` deliveries of `event_id` on `topic`: the broker did
    carry every copy (the server's consumer group reads the same stream)."""
    def check(ds: list[Delivery]) -> list[Delivery] | None:
        got = [d for d in ds if d.topic == topic and d.id == event_id]
        return got if len(got) >= n else None

    return probe.wait_for(
        check,
        timeout,
        f"{n} copies of {event_id} on {topic}",
    )


def test_recurring_scheduled_twice_creates_one_occurrence(main, main_group, probe, infra):
    user = new_user()
    mcp = main.client(user)
    task, series, next_due = recurring_series(mcp)
    event = scheduled(user, task, series, next_due)
    occurrence = event["data"]["task_id"]

    # The same event twice (same id), as a redelivery would be.
    probe.publish(TOPIC_TASKS, event)
    probe.publish(TOPIC_TASKS, event)
    copies(probe, TOPIC_TASKS, event["id"], 2)
    wait_until(
        lambda: processed(infra.pg, main_group.database_url, "mcp-server:recurring", [event["id"]]),
        30,
        "the server to process the event",
    )
    # The same occurrence announced again under a new event id (a re-published schedule).
    again = scheduled(user, task, series, next_due)
    assert again["id"] != event["id"] and again["data"]["task_id"] == occurrence
    probe.publish(TOPIC_TASKS, again)
    wait_until(
        lambda: processed(infra.pg, main_group.database_url, "mcp-server:recurring", [again["id"]]),
        30,
        "the server to process the re-published event",
    )
    time.sleep(SETTLE)

    new = mcp.get_task(occurrence)
    assert new["title"] == task["title"]
    assert new["status"] == "pending"
    assert datetime.fromisoformat(new["due"].replace("Z", "+00:00")) == next_due
    assert new["recurrence"]["series_id"] == series
    listing = mcp.list_all()
    assert sorted(t["id"] for t in listing["tasks"]) == sorted([task["id"], occurrence])
    assert listing["total"] == 2

    # The new task's own created event went out once.
    probe.wait_for(
        lambda ds: created_events(ds, {occurrence}), 30, "the occurrence's created event"
    )
    time.sleep(SETTLE)
    created = created_events(probe.snapshot(), {occurrence})
    assert len({d.id for d in created}) == 1, [d.event for d in created]
    assert created[0].event["data"]["task"] == new


def test_reminder_triggered_twice_records_one_notification(main, main_group, probe, infra):
    user = new_user()
    mcp = main.client(user)
    task = mcp.add_task("Call mum", due=f"{Y}-02-01T10:00:00Z", time_zone="UTC")
    reminder_id = str(uuid.uuid4())
    fire_at = datetime(Y, 2, 1, 9, 30, tzinfo=timezone.utc)
    event = reminder_triggered(user, task, reminder_id, fire_at)
    probe.publish(TOPIC_NOTIFICATIONS, event)
    probe.publish(TOPIC_NOTIFICATIONS, event)
    # The same firing under another event id: still one notification (its id is derived).
    again = reminder_triggered(user, task, reminder_id, fire_at)
    probe.publish(TOPIC_NOTIFICATIONS, again)
    copies(probe, TOPIC_NOTIFICATIONS, event["id"], 2)
    both = {event["id"], again["id"]}
    wait_until(
        lambda: processed(infra.pg, main_group.database_url, "mcp-server:notifications", both)
        == both,
        30,
        "the server to process both event ids",
    )
    time.sleep(SETTLE)

    out = mcp.call("list_notifications", {})
    assert out["unread"] == 1, out
    [n] = out["notifications"]
    assert n["id"] == notification_id(reminder_id, fire_at)
    assert n["task_id"] == task["id"] and n["reminder_id"] == reminder_id
    assert n["title"] == "Call mum" and "Call mum" in n["message"]
    assert datetime.fromisoformat(n["fire_at"].replace("Z", "+00:00")) == fire_at
    assert n["read"] is False


def _malformed_schedule(user: str, mcp: Mcp) -> tuple[str, dict]:
    return TOPIC_TASKS, cloud_event(RECURRING, {"owner": user, "when": "tomorrow-ish"})


def _underived_task_id(user: str, mcp: Mcp) -> tuple[str, dict]:
    task, series, due = recurring_series(mcp)
    event = scheduled(user, task, series, due)
    event["data"]["task_id"] = str(uuid.uuid4())  # not UUIDv5(series, due)
    return TOPIC_TASKS, event


def _malformed_reminder(user: str, mcp: Mcp) -> tuple[str, dict]:
    return TOPIC_NOTIFICATIONS, cloud_event(REMINDER, "not an object")


@pytest.mark.parametrize(
    "make", [_malformed_schedule, _underived_task_id, _malformed_reminder],
    ids=["malformed-schedule", "underived-task-id", "malformed-reminder"],
)  # fmt: skip
def test_poison_event_is_dropped_to_the_dead_letter_topic(main, main_group, probe, infra, make):
    user = new_user()
    mcp = main.client(user)
    topic, event = make(user, mcp)
    before = mcp.list_all()["total"]
    drops_logged = drops(main.log)
    probe.publish(topic, event)

    [dead] = probe.wait_for(
        lambda ds: [d for d in ds if d.topic == TOPIC_DEADLETTER and d.id == event["id"]][:1],
        30,
        "the poison event on the dead-letter topic",
    )
    assert dead.type == event["type"]
    assert dead.event["data"] == event["data"]
    # Dropped, not processed: no effect and no processed-event record.
    consumer = "mcp-server:recurring" if topic == TOPIC_TASKS else "mcp-server:notifications"
    assert not processed(infra.pg, main_group.database_url, consumer, [event["id"]])
    assert mcp.list_all()["total"] == before
    assert mcp.call("list_notifications", {})["notifications"] == []
    assert drops(main.log) > drops_logged, "the server did not log the drop"


def drops(log) -> int:
    return log.read_text(errors="replace").count("dropping an event that cannot be processed")


def test_concurrent_schedules_of_one_occurrence_are_all_processed_at_once(
    main, main_group, probe, infra
):
    """Several event ids announcing one occurrence, delivered together: one task, and every
    event is answered SUCCESS at once (none waits for a redelivery)."""
    user = new_user()
    mcp = main.client(user)
    task, series, next_due = recurring_series(mcp)
    events = [scheduled(user, task, series, next_due) for _ in range(6)]
    for e in events:
        probe.publish(TOPIC_TASKS, e)
    ids = [e["id"] for e in events]
    def done() -> set[str]:
        return processed(infra.pg, main_group.database_url, "mcp-server:recurring", ids)

    wait_until(
        lambda: done() == set(ids),
        10,
        "the server to process every event id",
        diagnose=lambda: f"processed: {done()!r}",
    )
    listing = mcp.list_all()
    assert listing["total"] == 2, listing
