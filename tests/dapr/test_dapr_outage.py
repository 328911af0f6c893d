"""The server's sidecar goes away while tasks are written: the outbox keeps the events, and they
all go out once it is back. Events for the server wait in the broker meanwhile."""

from __future__ import annotations

import time

import pytest

from dapr_support import (
    TOPIC_TASKS,
    Delivery,
    created_events,
    new_user,
    processed,
    recurring_series,
    scheduled,
    wait_until,
)

WRITTEN = 10


@pytest.mark.timeout(180)
def test_events_written_while_the_sidecar_is_down_are_delivered_after_it_returns(
    groups, probe, infra
):
    group = groups("outage", "mcp-outage")
    server, daprd, db = group.server, group.daprd, group.database_url
    user = new_user()
    mcp = server.client(user)
    series_task, series, next_due = recurring_series(mcp)
    probe.wait_for(lambda ds: created_events(ds, {series_task["id"]}), 30, "the pipeline to work")
    wait_until(lambda: server.pending() == 0, 15, "an empty outbox")

    daprd.stop()
    assert not daprd.proc.alive()

    # Tool calls still succeed: the events wait in the outbox.
    written = [mcp.add_task(f"written offline {i}")["id"] for i in range(WRITTEN)]
    mcp.call("update_task", {"task_id": written[0], "priority": "high"})
    assert server.pending() == WRITTEN + 1
    assert server.readyz()["status"] == "ready"
    # The relay tried, failed, and kept them, blaming no event for the sidecar's absence.
    wait_until(
        lambda: "cannot publish now; backing off" in server.log.read_text(),
        15,
        "the relay to try publishing",
    )
    assert server.pending() == WRITTEN + 1
    assert int(infra.pg.run(db, "SELECT count(*) FROM outbox WHERE attempts > 0")) == 0
    # Meanwhile an event for the server is published twice (same id): it waits in the broker.
    event = scheduled(user, series_task, series, next_due)
    probe.publish(TOPIC_TASKS, event)
    probe.publish(TOPIC_TASKS, event)
    time.sleep(1)
    assert not created_events(probe.snapshot(), set(written)), "events left without a sidecar?"

    daprd.restart()
    daprd.wait_healthy()

    ids = set(written)
    probe.wait_for(
        lambda ds: {d.subject for d in created_events(ds, ids)} == ids,
        90,
        f"the {WRITTEN} created events after the sidecar returned",
    )
    probe.wait_for(
        lambda ds: [
            d for d in ds
            if d.topic == TOPIC_TASKS and d.subject == written[0]
            and d.type == "com.todo.task.updated"
        ],
        30,
        "the updated event",
    )  # fmt: skip
    wait_until(lambda: server.pending() == 0, 30, "the outbox to drain")

    # None lost, none published twice under different ids: each task's created event is the one
    # in the outbox (redeliveries of the same id are allowed: delivery is at least once).
    outbox = infra.pg.run(
        db,
        "SELECT subject, envelope->>'id' FROM outbox "
        "WHERE envelope->>'type' = 'com.todo.task.created'",
    ).split()
    outbox_ids = {row.split("|")[0]: row.split("|")[1] for row in outbox}
    seen: dict[str, set[str]] = {}
    for d in created_events(probe.snapshot(), ids):
        seen.setdefault(d.subject, set()).add(d.id)
    assert seen == {t: {outbox_ids[t]} for t in written}

    # The broker kept the event for the server's consumer group: one occurrence, exactly once.
    occurrence = event["data"]["task_id"]
    wait_until(
        lambda: processed(infra.pg, db, "mcp-server:recurring", [event["id"]]),
        30,
        "the server to process the event published during the outage",
    )
    probe.wait_for(
        lambda ds: created_events(ds, {occurrence}), 30, "the occurrence's created event"
    )
    time.sleep(1.5)
    assert mcp.get_task(occurrence)["recurrence"]["series_id"] == series
    listing = mcp.list_all()
    assert listing["total"] == 1 + WRITTEN + 1, [t["title"] for t in listing["tasks"]]
    occurrence_events: list[Delivery] = created_events(probe.snapshot(), {occurrence})
    assert len({d.id for d in occurrence_events}) == 1
