"""Two replicas of the server (same app-id, same database, each with its own sidecar) relay one
outbox: every event goes out, and none twice."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from dapr_support import McpServer, created_events, new_user, wait_until

PER_REPLICA = 50
THREADS_PER_REPLICA = 2


@pytest.mark.timeout(180)
def test_two_replicas_relay_one_outbox_without_duplicates(groups, probe, infra):
    group = groups("replicas", "mcp-server", replicas=2)
    servers = [m.server for m in group.members]
    user = new_user()

    def write(server: McpServer, tag: str, n: int) -> list[str]:
        mcp = server.client(user)
        try:
            return [mcp.add_task(f"{tag} {i}")["id"] for i in range(n)]
        finally:
            mcp.close()

    share = PER_REPLICA // THREADS_PER_REPLICA
    with ThreadPoolExecutor(len(servers) * THREADS_PER_REPLICA) as pool:
        futures = [
            pool.submit(write, s, f"replica {r} writer {w}", share)
            for r, s in enumerate(servers)
            for w in range(THREADS_PER_REPLICA)
        ]
        ids = [i for f in futures for i in f.result()]
    assert len(set(ids)) == len(ids) == len(servers) * PER_REPLICA
    ids_set = set(ids)

    probe.wait_for(
        lambda ds: {d.subject for d in created_events(ds, ids_set)} == ids_set,
        90,
        f"{len(ids)} created events",
    )
    for s in servers:
        wait_until(lambda s=s: s.pending() == 0, 30, f"{s.name}'s view of the outbox to drain")
    # Let any second copy in flight arrive before counting.
    time.sleep(2)

    created = created_events(probe.snapshot(), ids_set)
    per_id = Counter(d.id for d in created)
    assert not {i: n for i, n in per_id.items() if n > 1}, "events delivered more than once"
    per_task = Counter(d.subject for d in created)
    assert set(per_task.values()) == {1}
    # And they are the outbox's events, each published once.
    rows = infra.pg.run(
        group.database_url,
        "SELECT count(*), count(published_at), count(DISTINCT envelope->>'id') FROM outbox",
    ).strip()
    assert rows == f"{len(ids)}|{len(ids)}|{len(ids)}", rows
    assert set(per_id) == set(
        infra.pg.run(group.database_url, "SELECT envelope->>'id' FROM outbox").split()
    )
