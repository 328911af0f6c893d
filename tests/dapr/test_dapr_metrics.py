"""Both services' Prometheus endpoints, scraped after a known workload: tool calls by tool and
outcome, the relay's counts and the outbox's gauges, the scheduler's armed and fired reminders."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dapr_support import free_port, new_user, scrape, value, wait_until

@pytest.mark.timeout(180)
def test_metrics_count_a_known_workload(groups, schedulers, probe, infra):
    scheduler_port = free_port()
    group_port = free_port()
    [scheduler] = schedulers(env={"TODO_METRICS_LISTEN": f"127.0.0.1:{scheduler_port}"}).members
    before = scrape(scheduler_port)
    group = groups(
        "metrics", "mcp-metrics", server_env={"TODO_METRICS_LISTEN": f"127.0.0.1:{group_port}"}
    )
    server = group.server
    mcp = server.client(new_user())

    fire_at = (datetime.now(timezone.utc) + timedelta(seconds=3)).replace(microsecond=0)
    mcp.add_task("with a reminder", reminders=[{"at": fire_at.isoformat()}])
    for i in range(4):
        mcp.add_task(f"plain {i}")
    assert mcp.call_raw("add_task", {"title": ""})["isError"]
    assert mcp.call_raw("get_task", {"task_id": "not-a-task-id"})["isError"]
    mcp.call("list_tasks", {})
    wait_until(lambda: server.pending() == 0, 15, "the outbox drained")
    wait_until(
        lambda: mcp.call("list_notifications", {})["notifications"], 20, "the reminder fired"
    )

    s = scrape(group_port)
    assert value(s, "todo_tool_calls_total", tool="add_task", outcome="ok") == 5
    assert value(s, "todo_tool_calls_total", tool="add_task", outcome="error") == 1
    assert value(s, "todo_tool_calls_total", tool="get_task", outcome="error") == 1
    assert value(s, "todo_tool_calls_total", tool="list_tasks", outcome="ok") == 1
    assert value(s, "todo_tool_call_duration_seconds_count", tool="add_task") == 6
    assert value(s, "todo_tool_call_duration_seconds_bucket", tool="add_task", le="+Inf") == 6
    # Five created events, each published once; nothing waits or was given up.
    assert value(s, "todo_relay_published_total") == 5
    assert value(s, "todo_relay_dead_lettered_total") == 0
    assert value(s, "todo_relay_batch_events_sum") == 5
    assert value(s, "todo_outbox_pending") == 0
    assert value(s, "todo_outbox_dead_letters") == 0
    # The reminder came back as an event the server consumed.
    assert value(s, "todo_events_consumed_total", status="SUCCESS") >= 1

    after = scrape(scheduler_port)
    armed = value(after, "todo_reminders_armed_total") - value(before, "todo_reminders_armed_total")
    fired = value(after, "todo_reminders_fired_total") - value(before, "todo_reminders_fired_total")
    late = value(after, "todo_reminder_lateness_seconds_count") - value(
        before, "todo_reminder_lateness_seconds_count"
    )
    assert armed >= 1 and fired >= 1, (armed, fired)
    assert late == fired, "every firing records its lateness"
    assert value(after, "todo_events_consumed_total", status="SUCCESS") >= 5

    # Every task event delivered went through a batch, however they were grouped (a batch is
    # counted before its events are answered: equal once nothing is in flight).
    def batched_and_answered():
        now = scrape(scheduler_port)
        answered = sum(
            value(now, "todo_events_consumed_total", status=status)
            - value(before, "todo_events_consumed_total", status=status)
            for status in ("SUCCESS", "RETRY", "DROP")
        )
        batched = value(now, "todo_scheduler_batch_events_sum") - value(
            before, "todo_scheduler_batch_events_sum"
        )
        return (batched, answered) if batched == answered >= 5 else None

    wait_until(batched_and_answered, timeout=30, what="every delivered task event in a batch")
