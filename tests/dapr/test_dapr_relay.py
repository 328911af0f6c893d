"""The relay under failure: an event the sidecar always refuses holds back only its own task and
ends in the dead-letter table, from which the operator command re-drives it; a replica stopped
while holding claims loses them when their lease expires, and nothing goes out twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter

import pytest

from dapr_support import (
    Delivery,
    clean_env,
    created_events,
    new_user,
    wait_until,
)

# Big enough for the sidecar of the poison test to refuse it, small enough for any other.
POISON_BYTES = 600_000
MAX_ATTEMPTS = 4  # waits of 1 s, 2 s and 4 s before the fourth and last attempt


def dead_letters(infra, database_url: str, *args: str) -> str:
    """Runs `todo-mcp dead-letters ARGS…` against the group's database, as an operator would."""
    out = subprocess.run(
        [infra.binary, "dead-letters", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(DATABASE_URL=database_url, RUST_LOG="warn"),
    )
    assert out.returncode == 0, f"dead-letters {args}: {out.returncode}\n{out.stderr}"
    return out.stdout


def of_task(ds: list[Delivery], task_id: str, event_type: str) -> list[Delivery]:
    return [d for d in ds if d.subject == task_id and d.type == event_type]


@pytest.mark.timeout(240)
def test_a_poisoned_event_holds_back_only_its_task_and_is_re_driven(groups, probe, infra):
    group = groups(
        "poison",
        "mcp-poison",
        server_env={"TODO_OUTBOX_MAX_ATTEMPTS": str(MAX_ATTEMPTS)},
        daprd_args=["--max-body-size", "256Ki"],
    )
    server, url = group.server, group.database_url
    mcp = server.client(new_user())
    a = mcp.add_task("A")["id"]
    probe.wait_for(lambda ds: of_task(ds, a, "com.todo.task.created"), 30, "A created")

    # An event of A that the sidecar refuses every time: larger than it accepts.
    poison_id = str(uuid.uuid4())
    infra.pg.run(
        url,
        "INSERT INTO outbox (id, topic, event_type, subject, envelope, created_at) VALUES "
        f"('{poison_id}', 'tasks', 'com.todo.test.poison', '{a}', jsonb_build_object("
        f"'specversion', '1.0', 'id', '{poison_id}', 'source', '/tests', "
        f"'type', 'com.todo.test.poison', 'subject', '{a}', "
        f"'datacontenttype', 'application/json', "
        f"'data', jsonb_build_object('blob', repeat('x', {POISON_BYTES}))), now())",
    )
    mcp.call("update_task", {"task_id": a, "title": "A, renamed"})
    others = {mcp.add_task(f"task {i}")["id"]: time.monotonic() for i in range(25)}

    # B…Z go out at once, while A's update waits behind the poison.
    seen = probe.wait_for(
        lambda ds: (c := created_events(ds, set(others))) and len(c) == len(others) and c,
        30,
        "the other tasks' created events",
    )
    late = {d.subject: round(d.at - others[d.subject], 3) for d in seen if d.at - others[d.subject] > 2}
    assert not late, f"other tasks were held back by A's poison (seconds): {late}"
    assert not of_task(probe.snapshot(), a, "com.todo.task.updated"), "A's update overtook its poison"
    retrying = infra.pg.run(url, f"SELECT attempts > 0 FROM outbox WHERE id = '{poison_id}'").strip()
    assert retrying == "t", "the poison was still being retried meanwhile"

    # After its last attempt the poison moves aside and A's update goes out.
    wait_until(
        lambda: server.readyz()["outbox"]["dead_letters"] == 1, 60, "the poison dead-lettered"
    )
    probe.wait_for(lambda ds: of_task(ds, a, "com.todo.task.updated"), 30, "A's update")
    [letter] = [json.loads(line) for line in dead_letters(infra, url, "list", "--json").splitlines()]
    assert letter["id"] == poison_id and letter["subject"] == a, letter
    assert letter["attempts"] == MAX_ATTEMPTS, letter
    assert "larger than max" in letter["last_error"] or "ResourceExhausted" in letter["last_error"], letter
    assert poison_id in dead_letters(infra, url, "list"), "the table names the event"

    # The operator lifts the limit and re-drives the event: it is delivered, once.
    daprd = group.daprd
    daprd.stop()
    i = daprd.proc.argv.index("--max-body-size")
    del daprd.proc.argv[i : i + 2]
    daprd.restart()
    daprd.wait_healthy()
    assert "1 dead letter(s) back in the outbox" in dead_letters(infra, url, "retry", "--all")
    [d] = probe.wait_for(lambda ds: [d for d in ds if d.id == poison_id], 60, "the re-driven event")
    assert len(d.event["data"]["blob"]) == POISON_BYTES
    wait_until(lambda: server.readyz()["outbox"]["dead_letters"] == 0, 15, "no dead letters")
    wait_until(lambda: server.pending() == 0, 15, "an empty outbox")
    assert dead_letters(infra, url, "list").strip() == "no dead letters"


@pytest.mark.timeout(180)
def test_claims_of_a_stopped_replica_expire_and_another_delivers_them_once(groups, probe, infra):
    lease = 5
    group = groups(
        "lease", "mcp-lease", replicas=2, server_env={"TODO_OUTBOX_LEASE_SECONDS": str(lease)}
    )
    stuck, other = group.members
    url = group.database_url
    mcp = stuck.server.client(new_user())
    os.kill(stuck.daprd.proc.pid, signal.SIGSTOP)
    try:
        # Written through the stuck replica, whose relay claims them at once and then hangs on
        # its stopped sidecar.
        ids = {mcp.add_task(f"held {i}")["id"] for i in range(20)}
        # Longer than the other replica's poll: what it could take, it has published by now.
        time.sleep(0.7)
        os.kill(stuck.server.proc.pid, signal.SIGSTOP)
        claimed = set(
            infra.pg.run(
                url,
                "SELECT subject FROM outbox WHERE published_at IS NULL AND claim_id IS NOT NULL "
                "AND locked_until > now() + interval '1.5 seconds'",
            ).split()
        )
        assert claimed, "the stuck replica held nothing; the test proves nothing"

        # The other replica takes them over once the lease runs out, not before.
        time.sleep(1)
        early = {d.subject for d in created_events(probe.snapshot(), claimed)}
        assert not early, f"claimed events went out while their claim lived: {early}"
        probe.wait_for(
            lambda ds: {d.subject for d in created_events(ds, ids)} == ids,
            lease + 30,
            "every event, through the other replica",
        )
        wait_until(lambda: other.server.pending() == 0, 15, "the outbox drained")
    finally:
        # The stuck sidecar never answers (its buffered calls die with it); the relay comes back.
        stuck.daprd.proc.stop(timeout=1)
        os.kill(stuck.server.proc.pid, signal.SIGCONT)

    # Back, the stale relay finds its claim gone and publishes nothing again.
    time.sleep(lease)
    created = created_events(probe.snapshot(), ids)
    doubled = {i: n for i, n in Counter(d.id for d in created).items() if n > 1}
    assert not doubled, f"events delivered twice: {doubled}"
    rows = infra.pg.run(url, "SELECT count(*), count(published_at) FROM outbox").strip()
    assert rows == "20|20", rows
    assert stuck.server.proc.alive(), "the stale relay survived its lost claims"
