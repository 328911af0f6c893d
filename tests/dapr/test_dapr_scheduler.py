"""The scheduler on Dapr: todo-mcp → pub/sub → todo-scheduler (state store, Jobs API through the
Dapr scheduler service) → pub/sub → todo-mcp, with real daprd sidecars, Redis and PostgreSQL.

Times are measured against the notification's own record: `created_at` (when todo-mcp stored
it) minus `fire_at` (the reminder's time) is the end-to-end lateness.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from dapr_support import (
    REMINDER,
    TOPIC_NOTIFICATIONS,
    free_port,
    new_user,
    notification_id,
    occurrence_task_id,
    scrape,
    value,
    wait_until,
)


def whole_seconds_from_now(seconds: float) -> datetime:
    """A whole-second UTC time at least `seconds` ahead."""
    now = datetime.now(timezone.utc)
    return datetime.fromtimestamp(math.ceil(now.timestamp() + seconds), timezone.utc)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def notifications(pg, url: str, owner: str) -> list[tuple[str, datetime, datetime]]:
    """(reminder_id, fire_at, created_at) of the owner's notifications in the server database."""
    out = pg.run(
        url,
        "SELECT reminder_id, extract(epoch FROM fire_at), extract(epoch FROM created_at) "
        f"FROM notifications WHERE owner = '{owner}' ORDER BY fire_at",
    )
    rows = []
    for line in out.splitlines():
        rid, fire, created = line.split("|")
        rows.append(
            (
                rid,
                datetime.fromtimestamp(float(fire), timezone.utc),
                datetime.fromtimestamp(float(created), timezone.utc),
            )
        )
    return rows


def triggered_for(probe, owner: str) -> list:
    """The probe's deliveries of `reminder.triggered` for `owner` (other tests publish events
    with data in other shapes on the same topic)."""

    def owner_of(event: dict) -> object:
        data = event.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                return None
        return data.get("owner") if isinstance(data, dict) else None

    return [
        d
        for d in probe.snapshot(TOPIC_NOTIFICATIONS)
        if d.type == REMINDER and owner_of(d.event) == owner
    ]


def test_a_reminder_set_3s_ahead_fires_within_a_second(main_group, schedulers, probe, infra):
    schedulers()
    user = new_user()
    mcp = main_group.server.client(user)
    fire_at = whole_seconds_from_now(3)
    task = mcp.add_task(
        "Take the cake out",
        due=iso(fire_at + timedelta(hours=1)),
        reminders=[{"at": iso(fire_at)}],
    )
    reminder_id = task["reminders"][0]["id"]

    rows = wait_until(
        lambda: notifications(infra.pg, main_group.database_url, user),
        timeout=15,
        what="the reminder's notification",
    )
    assert len(rows) == 1, rows
    rid, fired_for, recorded = rows[0]
    assert rid == reminder_id
    assert fired_for == fire_at
    lateness = (recorded - fire_at).total_seconds()
    assert 0 <= lateness <= 1.0, f"recorded {lateness:.3f}s after its time"

    # Visible to the user through the tool, and delivered once as a well-formed event.
    listed = mcp.call("list_notifications", {})["notifications"]
    assert [n["reminder_id"] for n in listed] == [reminder_id]
    assert listed[0]["title"] == "Take the cake out"
    events = triggered_for(probe, user)
    assert len(events) == 1, probe.summary()
    event = events[0].event
    assert event["id"] == notification_id(reminder_id, fire_at)
    assert event["source"] == "/scheduler"
    assert event["subject"] == task["id"]
    assert event["data"]["task_id"] == task["id"]


def test_a_recurring_task_gets_its_next_occurrence_when_due(main_group, schedulers, infra):
    schedulers()
    user = new_user()
    mcp = main_group.server.client(user)
    due = whole_seconds_from_now(3)
    task = mcp.add_task(
        "Feed the cat",
        due=iso(due),
        time_zone="America/New_York",
        recurrence={"frequency": "daily"},
    )
    series = task["recurrence"]["series_id"]
    next_due = due + timedelta(days=1)

    def next_occurrence():
        tasks = mcp.list_all()["tasks"]
        return [t for t in tasks if t["id"] != task["id"]]

    created = wait_until(next_occurrence, timeout=15, what="the next occurrence")
    seen_at = datetime.now(timezone.utc)
    assert (seen_at - due).total_seconds() <= 2.0, "it appears when the occurrence is due"
    assert len(created) == 1, created
    occurrence = created[0]
    assert occurrence["id"] == occurrence_task_id(series, next_due)
    assert occurrence["recurrence"]["series_id"] == series
    assert occurrence["status"] == "pending"
    # Same local wall-clock time, one day later (in the task's own zone).
    assert occurrence["due"][11:19] == task["due"][11:19]
    time.sleep(1.5)
    assert len(next_occurrence()) == 1, "exactly one task per occurrence"


@pytest.mark.timeout(240)
def test_two_replicas_fire_1000_reminders_once_each(main_group, schedulers, probe, infra):
    group = schedulers(replicas=2)
    user = new_user()
    mcp = main_group.server.client(user)
    start = whole_seconds_from_now(25)
    expected: dict[str, datetime] = {}
    for i in range(100):
        reminders = [{"at": iso(start + timedelta(milliseconds=50 * (10 * i + k)))} for k in range(10)]
        task = mcp.add_task(f"Batch {i}", due=iso(start + timedelta(hours=1)), reminders=reminders)
        for r in task["reminders"]:
            expected[r["id"]] = datetime.fromisoformat(r["at"]).astimezone(timezone.utc)
    assert len(expected) == 1000
    assert datetime.now(timezone.utc) < start, "the reminders were all set before the first fired"

    def all_recorded():
        rows = notifications(infra.pg, main_group.database_url, user)
        return rows if len(rows) >= 1000 else None

    rows = wait_until(all_recorded, timeout=120, what="1000 notifications", interval=0.5)
    time.sleep(3)  # anything doubled would arrive by now
    rows = notifications(infra.pg, main_group.database_url, user)
    assert len(rows) == 1000
    assert {r[0] for r in rows} == set(expected)
    assert all(fired_for == expected[rid] for rid, fired_for, _ in rows)
    # Each reminder was published once: no replica fired what the other did.
    events = triggered_for(probe, user)
    ids = [d.id for d in events]
    assert len(ids) == 1000 and len(set(ids)) == 1000, f"{len(ids)} deliveries, {len(set(ids))} ids"
    late = sorted((recorded - fire_at).total_seconds() for _, fire_at, recorded in rows)
    p99 = late[int(len(late) * 0.99) - 1]
    print(f"1000 reminders over 2 replicas: fired {[m.app.fired() for m in group.members]}, "
          f"lateness p50 {late[500]:.3f}s p99 {p99:.3f}s max {late[-1]:.3f}s")  # fmt: skip


@pytest.mark.timeout(240)
def test_a_killed_scheduler_loses_and_doubles_nothing(main_group, schedulers, probe, infra):
    # Unacknowledged events come back soon after their consumer died.
    group = schedulers(pubsub_metadata={"processingTimeout": "5s", "redeliverInterval": "2s"})
    user = new_user()
    mcp = main_group.server.client(user)
    first = whole_seconds_from_now(6)
    expected = {}
    for i in range(50):
        at = first + timedelta(milliseconds=100 * i)
        task = mcp.add_task(f"Pending {i}", due=iso(at + timedelta(hours=1)), reminders=[{"at": iso(at)}])
        expected[task["reminders"][0]["id"]] = at
    series_task = mcp.add_task(
        "Daily review", due=iso(first), time_zone="UTC", recurrence={"frequency": "daily"}
    )
    # Killed with events in flight and every reminder pending; back after their times.
    group.app.kill()
    time.sleep(max(0.0, (first - datetime.now(timezone.utc)).total_seconds()) + 3)
    group.app.start()

    def all_recorded():
        rows = notifications(infra.pg, main_group.database_url, user)
        return rows if len(rows) >= 50 else None

    wait_until(all_recorded, timeout=90, what="50 notifications after the restart", interval=0.5)
    occurrence_id = occurrence_task_id(series_task["recurrence"]["series_id"], first + timedelta(days=1))
    wait_until(
        lambda: any(t["id"] == occurrence_id for t in mcp.list_all()["tasks"]),
        timeout=60,
        what="the series' next occurrence after the restart",
    )
    time.sleep(3)
    rows = notifications(infra.pg, main_group.database_url, user)
    assert sorted(r[0] for r in rows) == sorted(expected), "each reminder exactly once"
    tasks = mcp.list_all()["tasks"]
    assert sum(1 for t in tasks if t["title"] == "Daily review") == 2, "one new occurrence"
    # Whatever was published twice (a firing cut short by the kill) carried the same id.
    events = triggered_for(probe, user)
    assert {d.id for d in events} == {notification_id(r, at) for r, at in expected.items()}


def test_the_cron_sweep_fires_a_reminder_whose_job_was_lost(main_group, schedulers, infra):
    group = schedulers(cron_schedule="@every 2s", env={"TODO_SWEEP_GRACE_SECONDS": "1"})
    sidecar = group.members[0].daprd
    user = new_user()
    mcp = main_group.server.client(user)
    fire_at = whole_seconds_from_now(8)
    task = mcp.add_task("Renew the passport", reminders=[{"at": iso(fire_at)}])
    # The job of the second it is due in (its due slot).
    job = f"/v1.0-alpha1/jobs/due-{int(fire_at.timestamp())}"
    wait_until(lambda: sidecar.http.get(job).status_code == 200, 10, "the reminder's slot job")
    # Lost, as when the Dapr scheduler service loses its data.
    assert sidecar.http.delete(job).status_code == 204
    assert sidecar.http.get(job).status_code != 200

    rows = wait_until(
        lambda: notifications(infra.pg, main_group.database_url, user),
        timeout=20,
        what="the sweep to fire the reminder",
    )
    assert [r[0] for r in rows] == [task["reminders"][0]["id"]]
    lateness = (rows[0][2] - fire_at).total_seconds()
    assert lateness >= 1.0, "fired by the sweep after its grace period, not by a job"
    assert "the sweep fired items their jobs had missed" in group.app.log.read_text()
    time.sleep(3)  # later sweeps find it settled
    assert len(notifications(infra.pg, main_group.database_url, user)) == 1


def index_bucket(item: str, hour: datetime) -> str:
    """The sweep's index bucket of `item` due in `hour`: the scheduler's FNV-1a shard of 64."""
    h = 0xCBF29CE484222325
    for byte in item.encode():
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return f"due:{hour:%Y%m%d%H}:{h % 64:02d}"


def test_a_poisoned_sweep_entry_cannot_keep_the_sweep_from_a_lost_job(main_group, schedulers, infra):
    """An index entry 60 hours old whose record no version can read, with the watermark on its
    hour: further back than one sweep reads (48 hours). The sweep sets it aside (quarantined at
    the first failure here) and moves on, and still fires a reminder whose job was lost now."""
    poison = f"reminder:{uuid.uuid4()}"
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=60)
    # Written while no sweep runs (the first sweep of `@every 1h` is an hour away).
    quiet = schedulers(cron_schedule="@every 1h")
    state = "/v1.0/state/statestore"
    sidecar = quiet.members[0].daprd
    # Over the version the scheduler wrote, if any (it writes with first-write concurrency).
    current = sidecar.http.get(f"{state}/sweep:watermark")
    watermark = {"key": "sweep:watermark", "value": {"hour": iso(hour)}}
    if current.status_code == 200:
        watermark["etag"] = current.headers["etag"]
    saved = sidecar.http.post(
        state,
        json=[
            {"key": poison, "value": {"shape": "from another version"}},
            {"key": index_bucket(poison, hour), "value": {poison: iso(hour + timedelta(minutes=5))}},
            watermark,
        ],
    )
    assert saved.status_code == 204, saved.text
    quiet.close()

    metrics_port = free_port()
    group = schedulers(
        cron_schedule="@every 2s",
        env={
            "TODO_SWEEP_GRACE_SECONDS": "1",
            "TODO_SWEEP_MAX_ATTEMPTS": "1",
            "TODO_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        },
    )
    sidecar = group.members[0].daprd
    try:
        user = new_user()
        fire_at = whole_seconds_from_now(8)
        task = main_group.server.client(user).add_task("Water the plants", reminders=[{"at": iso(fire_at)}])
        job = f"/v1.0-alpha1/jobs/due-{int(fire_at.timestamp())}"
        wait_until(lambda: sidecar.http.get(job).status_code == 200, 10, "the reminder's slot job")
        assert sidecar.http.delete(job).status_code == 204

        rows = wait_until(
            lambda: notifications(infra.pg, main_group.database_url, user),
            timeout=30,
            what="the sweep to fire the reminder past the poisoned entry",
        )
        assert [r[0] for r in rows] == [task["reminders"][0]["id"]]
        failing = sidecar.http.get(f"{state}/sweep:failing").json()
        assert failing[poison]["attempts"] >= 1
        assert "unreadable" in failing[poison]["error"]
        ready = group.app.http.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["sweep"]["quarantined"] >= 1, ready
        assert "the sweep quarantined an entry it cannot settle" in group.app.log.read_text()
        samples = scrape(metrics_port)
        assert value(samples, "todo_sweep_quarantined_entries") >= 1
        assert value(samples, "todo_sweep_quarantined_total") >= 1
    finally:
        for key in (poison, "sweep:failing"):
            found = sidecar.http.get(f"{state}/{key}")
            if found.status_code == 200:
                etag = {"If-Match": found.headers["etag"]}
                assert sidecar.http.delete(f"{state}/{key}", headers=etag).status_code == 204
