"""Redis lost under the scheduler while 1,000 reminders and 100 daily series are pending: wiped
(`FLUSHALL`), or restarted without persistence. The scheduler's state is a projection of
todo-mcp's database: the next sweep finds the state without its epoch marker and asks for a
resync (`com.todo.resync.requested`), todo-mcp replays the schedule through its outbox
(`com.todo.task.resynced`), the scheduler arms it all again, and every reminder still fires
exactly once and every series makes exactly one occurrence.

The test has a Redis of its own (`own_redis`) under todo-mcp's and the scheduler's sidecars, so
that wiping it, or killing it and starting an empty one on the same port, disturbs no other test
(the jobs, in the Dapr scheduler service, survive: only Redis is lost). Each scenario prints its
figures (with `-s`): how long the replay took from the loss to the whole schedule armed again,
how late the reminders and occurrences came, and the counts.

Run alone with `.cache/venv/bin/python -m pytest -s tests/dapr/test_dapr_resync.py` and the
suite's environment (scripts/test.sh); about two minutes for both scenarios.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from dapr_support import (
    APP_TOKEN,
    RECURRING,
    REMINDER,
    TOPIC_NOTIFICATIONS,
    TOPIC_TASKS,
    consumer_group_caught_up,
    free_port,
    new_user,
    notification_id,
    occurrence_task_id,
    redis_keys,
    rfc3339,
    scrape,
    stream_events,
    value,
    wait_until,
)

USERS = 10
REMINDERS_PER_USER = 100
SERIES_PER_USER = 10
REMINDERS = USERS * REMINDERS_PER_USER
SERIES = USERS * SERIES_PER_USER
TASKS = REMINDERS + SERIES
# From the start of the tasks' creation to the first reminder: time to create and arm them all,
# lose Redis and replay the schedule, with a margin (checked before the loss).
LEAD = timedelta(seconds=45)
# Least time left before the first reminder when Redis is lost: the replay happens before the
# reminders fall due (those are "pending" reminders, not overdue ones).
MARGIN = timedelta(seconds=10)
# The reminders are spread over five seconds from the first; the series are all due after them.
SPREAD_MS = 100
SPREAD_STEPS = 50
SERIES_AFTER = timedelta(seconds=6)
# How long after its time the sweep takes an item its job has not settled (a test setting: the
# sweep run after everything fired must find nothing left to fire).
SWEEP_GRACE = 5
RESYNC = "com.todo.task.resynced"
RESYNC_CONSUMER = "mcp-server:resync"
# Dapr's Redis state store keeps key `k` of app `scheduler` as `scheduler||k`.
STATE = "scheduler||"
EPOCH = f"{STATE}scheduler:epoch"


def whole_second_after(seconds: float) -> datetime:
    now = datetime.now(timezone.utc).timestamp()
    return datetime.fromtimestamp(math.ceil(now + seconds), timezone.utc)


def sweep(app) -> dict:
    """What Dapr's cron bindings do: POST /triggers/reminders with the app token."""
    r = app.http.post("/triggers/reminders", headers={"dapr-api-token": APP_TOKEN})
    assert r.status_code == 200, f"sweep: {r.status_code} {r.text}"
    return r.json()


# The scheduler's records when everything is armed: one per task, reminder and series.
ARMED = {"task": TASKS, "reminder": REMINDERS, "recurring": SERIES}


def state_counts(host: str) -> dict[str, int]:
    """The scheduler's records in its state, by kind (as in `ARMED`)."""
    return {kind: len(redis_keys(host, f"{STATE}{kind}:*")) for kind in ARMED}


def count(pg, url: str, sql: str) -> int:
    return int(pg.run(url, sql).strip() or 0)


def ms(epoch: str) -> int:
    """A time PostgreSQL printed as `extract(epoch …)`, in milliseconds."""
    return round(float(epoch) * 1000)


def at_ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def create_schedule(server, first: datetime, series_due: datetime):
    """1,000 tasks with one reminder each (spread over five seconds from `first`) and 100 daily
    series due at `series_due`, for ten users. Returns ({reminder id: (task id, time)},
    {series id: task id})."""

    def one_user(n: int) -> tuple[dict, dict]:
        mcp = server.client(new_user())
        try:
            reminders, series = {}, {}
            for i in range(REMINDERS_PER_USER):
                k = n * REMINDERS_PER_USER + i
                at = first + timedelta(milliseconds=SPREAD_MS * (k % SPREAD_STEPS))
                task = mcp.add_task(
                    f"Reminder {k}",
                    due=rfc3339(first + timedelta(hours=1)),
                    reminders=[{"at": at.isoformat()}],
                )
                [reminder] = task["reminders"]
                fire_at = datetime.fromisoformat(reminder["at"]).astimezone(timezone.utc)
                assert at_ms(fire_at) == at_ms(at), reminder
                reminders[reminder["id"]] = (task["id"], fire_at)
            for i in range(SERIES_PER_USER):
                task = mcp.add_task(
                    f"Daily {n}.{i}",
                    due=rfc3339(series_due),
                    time_zone="UTC",
                    recurrence={"frequency": "daily"},
                )
                series[task["recurrence"]["series_id"]] = task["id"]
            return reminders, series
        finally:
            mcp.close()

    reminders, series = {}, {}
    with ThreadPoolExecutor(4) as pool:
        for r, s in pool.map(one_user, range(USERS)):
            reminders.update(r)
            series.update(s)
    assert len(reminders) == REMINDERS and len(series) == SERIES
    return reminders, series


def lose(redis, loss: str) -> None:
    if loss == "flushall":
        redis.flushall()
    else:
        redis.kill()
        time.sleep(1)  # down for a moment, as a Redis pod rescheduled
        redis.start()  # same port, a fresh dir, no RDB or AOF: empty


@pytest.mark.timeout(240)
@pytest.mark.parametrize("loss", ["flushall", "restart-without-persistence"])
def test_lost_redis_is_rebuilt_and_everything_fires_once(
    own_redis, groups, schedulers, infra, loss
):
    redis = own_redis
    group = groups(f"resync-{loss}", "mcp-server", redis_host=redis.host)
    server, db, pg = group.server, group.database_url, infra.pg
    metrics_port = free_port()
    app = schedulers(
        redis_host=redis.host,
        env={
            "TODO_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
            "TODO_SWEEP_GRACE_SECONDS": str(SWEEP_GRACE),
        },
    ).app

    def metric(name: str) -> float:
        return value(scrape(metrics_port), name)

    def diagnose() -> str:
        replayed = count(pg, db, f"SELECT count(*) FROM outbox WHERE event_type = '{RESYNC}'")
        return (
            f"scheduler state {state_counts(redis.host)}, resyncs requested "
            f"{metric('todo_resyncs_requested_total'):.0f}, reminders armed "
            f"{metric('todo_reminders_armed_total'):.0f}, fired "
            f"{metric('todo_reminders_fired_total'):.0f}, series fired "
            f"{metric('todo_series_fired_total'):.0f}; todo-mcp: {replayed} tasks replayed, "
            f"outbox pending {server.pending()}, "
            f"notifications {count(pg, db, 'SELECT count(*) FROM notifications')}, "
            f"series tasks {count(pg, db, 'SELECT count(*) FROM tasks WHERE series_id IS NOT NULL')}"
        )

    def answered() -> int:
        """Resync requests todo-mcp has answered."""
        return count(
            pg, db, f"SELECT count(*) FROM processed_events WHERE consumer = '{RESYNC_CONSUMER}'"
        )

    # A new state has no epoch: the scheduler begins one (at start, or at the first sweep) and
    # todo-mcp replays its empty schedule. From here on, a resync request means a lost state.
    sweep(app)
    wait_until(lambda: redis_keys(redis.host, EPOCH), 30, "the state's first epoch")
    wait_until(answered, 30, "todo-mcp to answer the first resync request")

    started = time.monotonic()
    first = whole_second_after(LEAD.total_seconds())
    series_due = first + SERIES_AFTER
    reminders, series = create_schedule(server, first, series_due)
    created_in = time.monotonic() - started

    # Everything armed, and nothing in flight: what Redis loses is the scheduler's state alone.
    wait_until(lambda: state_counts(redis.host) == ARMED, 60, "the schedule armed", 0.5, diagnose)
    wait_until(lambda: server.pending() == 0, 30, "the outbox to drain")
    wait_until(
        lambda: consumer_group_caught_up(redis.host, TOPIC_TASKS, "scheduler"),
        30,
        "the scheduler to read every task event",
    )
    assert metric("todo_reminders_armed_total") >= REMINDERS
    armed_in = time.monotonic() - started
    left = first - datetime.now(timezone.utc)
    assert left >= MARGIN, (
        f"setting up took {armed_in:.0f}s: only {left.total_seconds():.0f}s left before the "
        f"reminders fall due (LEAD {LEAD.total_seconds():.0f}s is too short for this machine)"
    )

    requests_before, answered_before = metric("todo_resyncs_requested_total"), answered()
    lose(redis, loss)
    lost_at = time.monotonic()
    # (The sidecars recreate their consumer groups, and with them the streams, at once.)
    assert state_counts(redis.host) == dict.fromkeys(ARMED, 0)

    # The next sweep (Dapr's cron binding, here called at once) finds no epoch and asks again.
    def requested() -> bool:
        if metric("todo_resyncs_requested_total") > requests_before:
            return True
        r = app.http.post("/triggers/reminders", headers={"dapr-api-token": APP_TOKEN})
        return r.status_code == 200 and metric("todo_resyncs_requested_total") > requests_before

    wait_until(requested, 30, "the sweep to ask for a resync", 0.5, diagnose)
    requested_in = time.monotonic() - lost_at
    wait_until(
        lambda: state_counts(redis.host) == ARMED, 60, "the schedule armed again", 0.2, diagnose
    )
    rearmed_in = time.monotonic() - lost_at
    rearmed_ahead = (first - datetime.now(timezone.utc)).total_seconds()

    # Every reminder and every occurrence, once they are due.
    def all_done() -> bool:
        notified = count(pg, db, "SELECT count(*) FROM notifications")
        made = count(pg, db, "SELECT count(*) FROM tasks WHERE series_id IS NOT NULL")
        return notified >= REMINDERS and made >= 2 * SERIES

    due_in = (series_due - datetime.now(timezone.utc)).total_seconds()
    wait_until(all_done, due_in + 60, "every notification and occurrence", 0.5, diagnose)
    # Once the grace period is over, a sweep finds nothing left to fire: each job settled its
    # items, none of them armed twice.
    time.sleep(max(0.0, (series_due - datetime.now(timezone.utc)).total_seconds() + SWEEP_GRACE + 1))
    swept = sweep(app)
    assert swept["fired"] == 0 and swept["failed"] == 0, swept
    wait_until(lambda: server.pending() == 0, 30, "the outbox to drain")
    for stream, consumer in (
        (TOPIC_NOTIFICATIONS, "mcp-server"), (TOPIC_TASKS, "mcp-server"), (TOPIC_TASKS, "scheduler")
    ):  # fmt: skip
        wait_until(
            lambda s=stream, c=consumer: consumer_group_caught_up(redis.host, s, c),
            30,
            f"{consumer} to read all of `{stream}`",
        )
    assert server.readyz()["outbox"]["dead_letters"] == 0

    # Each reminder fired exactly once, for its own time.
    rows = [
        row.split("|")
        for row in pg.run(
            db,
            "SELECT reminder_id, extract(epoch FROM fire_at), extract(epoch FROM created_at) "
            "FROM notifications",
        ).split()
    ]
    notified = Counter(rid for rid, _, _ in rows)
    assert len(rows) == REMINDERS, f"{len(rows)} notifications for {REMINDERS} reminders"
    assert set(notified) == set(reminders), (
        f"{len(set(reminders) - set(notified))} reminders without a notification, "
        f"{len(set(notified) - set(reminders))} notifications of unknown reminders"
    )
    assert all(ms(fire_at) == at_ms(reminders[rid][1]) for rid, fire_at, _ in rows)
    lateness = sorted((ms(created) - ms(fire_at)) / 1000 for _, fire_at, created in rows)
    # Published after the loss, each reminder's own firing (repeats would carry its id).
    published = Counter(
        e["id"]
        for e in stream_events(redis.host, TOPIC_NOTIFICATIONS)
        if e.get("type") == REMINDER
    )
    assert set(published) == {notification_id(r, at) for r, (_, at) in reminders.items()}

    # Each series made exactly one occurrence, due a day after its template.
    rows = [
        row.split("|")
        for row in pg.run(
            db,
            "SELECT id, series_id, extract(epoch FROM due_at), extract(epoch FROM created_at) "
            "FROM tasks WHERE series_id IS NOT NULL",
        ).split()
    ]
    templates = set(series.values())
    occurrences = [row for row in rows if row[0] not in templates]
    per_series = Counter(series_id for _, series_id, _, _ in occurrences)
    assert set(per_series) == set(series), f"{len(per_series)} of {SERIES} series went on"
    assert set(per_series.values()) == {1}, per_series.most_common(3)
    next_due = series_due + timedelta(days=1)
    for task_id, series_id, due, _ in occurrences:
        assert task_id == occurrence_task_id(series_id, next_due)
        assert ms(due) == at_ms(next_due)
    made_after = sorted((ms(created) - at_ms(series_due)) / 1000 for *_, created in occurrences)
    announced = Counter(
        e["data"]["task_id"]
        for e in stream_events(redis.host, TOPIC_TASKS)
        if e.get("type") == RECURRING
    )
    assert set(announced) == {occurrence_task_id(s, next_due) for s in series}

    # The resync: asked for once, answered with every task replayed through the outbox and the
    # `tasks` topic, and everything armed again.
    assert metric("todo_resyncs_requested_total") == requests_before + 1
    assert answered() == answered_before + 1
    assert "asked todo-mcp to replay the schedule" in app.log.read_text()
    replayed = Counter(
        pg.run(
            db,
            f"SELECT subject FROM outbox WHERE event_type = '{RESYNC}' "
            "AND published_at IS NOT NULL",
        ).split()
    )
    all_tasks = {task_id for task_id, _ in reminders.values()} | templates
    assert set(replayed) == all_tasks, f"{len(replayed)} of {TASKS} tasks replayed"
    delivered = {
        e.get("subject") for e in stream_events(redis.host, TOPIC_TASKS) if e.get("type") == RESYNC
    }
    assert delivered == all_tasks, f"{len(delivered)} of {TASKS} replayed tasks on `tasks`"
    armed = metric("todo_reminders_armed_total")
    assert armed >= 2 * REMINDERS, "each reminder armed before the loss and again after it"
    fired = metric("todo_reminders_fired_total")
    series_fired = metric("todo_series_fired_total")

    def p(q: float) -> float:
        return lateness[min(len(lateness) - 1, int(len(lateness) * q))]

    print(
        f"\n[resync] {loss}: {TASKS} tasks ({REMINDERS} reminders, {SERIES} daily series) "
        f"created in {created_in:.1f}s, armed by {armed_in:.1f}s; after the loss: resync "
        f"requested in {requested_in:.2f}s, {sum(replayed.values())} tasks replayed, all armed "
        f"again in {rearmed_in:.2f}s ({rearmed_ahead:.0f}s before the first reminder); "
        f"{sum(notified.values())} notifications, lateness p50 {p(0.5):.3f}s p99 {p(0.99):.3f}s "
        f"max {lateness[-1]:.3f}s; {len(occurrences)} occurrences, made "
        f"{made_after[0]:.3f}-{made_after[-1]:.3f}s after due; published "
        f"{sum(published.values())} reminders ({len(published)} ids) and "
        f"{sum(announced.values())} occurrences ({len(announced)} ids); scheduler counted "
        f"{armed:.0f} armed, {fired:.0f} fired, {series_fired:.0f} series fired"
    )
