"""Load and soak: 100,000 MCP tool calls from 64 concurrent clients over streamable HTTP, against
PostgreSQL, with the whole pipeline running (todo-mcp relaying its outbox through daprd to Redis
Streams, todo-scheduler arming the reminders through its daprd and the Dapr scheduler service).

The calls (todo-bench http, one keep-alive connection per client):
  - 40 clients: add_task                              (62.5 % of the calls)
  - 16 clients: list_tasks with a filter and search   (25 %)
  -  8 clients: add_task with a reminder tomorrow     (12.5 %: the scheduler arms each)
Client i of each group calls as user i (64 users), so searches run over one user's tasks.

Every few seconds the resident memory (VmRSS) of each process is sampled; a process levels off
when the mean of the last third of its samples is within 10 % (or 5 MB) of the middle third's.
At the end the outbox must drain and the scheduler must have armed every reminder.

Run with `scripts/soak.sh` (it starts PostgreSQL and Redis, builds release binaries and daprd);
SOAK_CALLS scales the run (default 100000). Writes target/bench/soak.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "dapr"))

from dapr_support import (  # noqa: E402
    JWT_SECRET,
    DaprScheduler,
    Daprd,
    McpServer,
    Postgres,
    SchedulerApp,
    free_port,
    mint_token,
    redis_flushall,
    wait_until,
    write_resources,
)

CALLS = int(os.environ.get("SOAK_CALLS", "100000"))
USERS = 64
SAMPLE_EVERY = 2.0
OUT = REPO / "target" / "bench"


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class Sampler(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: dict[str, list[int]] = {name: [] for name in [*pids, "postgres (all)"]}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for name, pid in self.pids.items():
                kib = rss_kib(pid)
                if kib is not None:
                    self.samples[name].append(kib)
            self.samples["postgres (all)"].append(sum(rss_kib(p) or 0 for p in postgres_pids()))
            self.stop.wait(SAMPLE_EVERY)


def levels_off(samples: list[int]) -> tuple[bool, float, float]:
    third = max(1, len(samples) // 3)
    middle = statistics.mean(samples[third : 2 * third] or samples)
    last = statistics.mean(samples[-third:])
    return last <= middle * 1.10 or last - middle <= 5 * 1024, middle / 1024, last / 1024


def bench(binary: Path, url: str, token: str, clients: int, calls: int, tool: str, args: str):
    return subprocess.Popen(
        [str(binary), "http", "--url", url, "--clients", str(clients), "--calls", str(calls),
         "--tool", tool, "--args", args],
        env={**os.environ, "BENCH_TOKEN": token},
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def main() -> int:
    env = {k: v for k, v in (line.split("=", 1) for line in sys.argv[1:])}
    release = REPO / "target" / "release"
    base = Path(env["SOAK_DIR"])
    base.mkdir(parents=True, exist_ok=True)
    redis_flushall(env["REDIS_HOST"])
    pg = Postgres(env["DATABASE_URL"], env["PSQL"])
    db = pg.create_database()
    resources = write_resources(
        base / "resources",
        redis_host=env["REDIS_HOST"],
        app_ids=["mcp-server", "scheduler"],
        secrets_data={"jwt-secret": JWT_SECRET, "database-url": db},
        cron_schedule="@every 1m",
    )
    started: list = []
    try:
        dapr_scheduler = DaprScheduler(env["DAPR_SCHEDULER"], base / "etcd", base / "dapr-scheduler.log").start()
        started.append(dapr_scheduler)
        ports = {"mcp": free_port(), "scheduler": free_port()}
        d_mcp = Daprd(env["DAPRD"], "mcp-server", ports["mcp"], resources, base / "daprd-mcp.log",
                      scheduler_address=dapr_scheduler.address).start()  # fmt: skip
        started.append(d_mcp)
        d_sched = Daprd(env["DAPRD"], "scheduler", ports["scheduler"], resources, base / "daprd-scheduler.log",
                        scheduler_address=dapr_scheduler.address).start()  # fmt: skip
        started.append(d_sched)
        server = McpServer(str(release / "todo-mcp"), "soak", d_mcp.http_port, ports["mcp"], base / "server.log",
                           env={"RUST_LOG": "warn", "TODO_DB_MAX_CONNECTIONS": "32"})  # fmt: skip
        started.append(server)
        server.start()
        scheduler = SchedulerApp(str(release / "todo-scheduler"), "soak", ports["scheduler"], d_sched.http_port,
                                 base / "scheduler.log", env={"RUST_LOG": "warn"})  # fmt: skip
        started.append(scheduler)
        scheduler.start()
        d_mcp.wait_healthy()
        d_sched.wait_healthy()

        pids = {"todo-mcp": server.proc.pid, "todo-scheduler": scheduler.proc.pid,
                "daprd (mcp-server)": d_mcp.proc.pid, "daprd (scheduler)": d_sched.proc.pid,
                "dapr-scheduler": dapr_scheduler.proc.pid}  # fmt: skip
        sampler = Sampler(pids)
        sampler.start()
        # One user per client (client i of each group calls as user i): the list clients search
        # task sets the size of a busy user's, not one set of 100,000 tasks.
        run_id = uuid.uuid4().hex[:8]
        token = ",".join(mint_token(f"soak-{run_id}-{i}", exp_in=7200) for i in range(USERS))
        url = f"{server.base}/mcp"
        tomorrow = time.strftime("%Y-%m-%dT09:00:00Z", time.gmtime(time.time() + 86400))
        split = [(40, CALLS * 5 // 8, "add_task", '{"title": "soak {n}", "tags": ["soak"]}'),
                 (16, CALLS // 4, "list_tasks", '{"search": "soak 1", "tags": ["soak"], "limit": 20}'),
                 (8, CALLS - CALLS * 5 // 8 - CALLS // 4, "add_task",
                  '{"title": "remind {n}", "due": "' + tomorrow + '", "reminders": [{"minutes_before": 30}]}')]  # fmt: skip
        start = time.monotonic()
        runs = [(c, n, tool, bench(release / "todo-bench", url, token, c, n, tool, a)) for c, n, tool, a in split]
        results = []
        for clients, calls, tool, proc in runs:
            out, _ = proc.communicate()
            result = json.loads(out.strip().splitlines()[-1])
            result["clients"] = clients
            results.append(result)
        elapsed = time.monotonic() - start
        reminders = split[2][1]
        # The pipeline catches up: every event published, every reminder armed.
        wait_until(lambda: server.pending() == 0, 600, "the outbox to drain", interval=1)
        armed = lambda: int(subprocess.run(  # noqa: E731
            [env["REDIS_CLI"], "-h", env["REDIS_HOST"].split(":")[0], "-p", env["REDIS_HOST"].split(":")[1],
             "--scan", "--pattern", "scheduler||reminder:*"], capture_output=True, text=True).stdout.count("\n"))  # fmt: skip
        wait_until(lambda: armed() >= reminders, 1800, f"the scheduler to arm {reminders} reminders", interval=2)
        drained = time.monotonic() - start
        time.sleep(SAMPLE_EVERY * 3)
        sampler.stop.set()
        sampler.join()
    finally:
        for p in reversed(started):
            p.close() if hasattr(p, "close") else p.stop()
        pg.drop_created()

    errors = sum(r["errors"] for r in results)
    total = sum(r["calls"] for r in results)
    lines = [
        "# Load and soak",
        "",
        f"`scripts/soak.sh`: {total} tool calls from 64 concurrent clients ({USERS} users) over streamable HTTP on "
        f"PostgreSQL, full pipeline running; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"- calls: {total}, errors: {errors}, wall time {elapsed:.1f} s, "
        f"throughput {total / elapsed:.0f} calls/s",
        f"- pipeline caught up (outbox drained, {reminders} reminders armed) {drained:.1f} s after the start",
        "",
        "| calls | clients | tool | p50 ms | p99 ms | max ms | calls/s | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(f"| {r['calls']} | {r['clients']} | {r['tool']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                     f"| {r['max_ms']:.1f} | {r['rate']:.0f} | {r['errors']} |")  # fmt: skip
    lines += ["", f"Resident memory, sampled every {SAMPLE_EVERY:.0f} s:", "",
              "| process | samples | first MB | peak MB | middle third MB | last third MB | levels off |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    flat = True
    for name, samples in sampler.samples.items():
        if not samples:
            continue
        ok, middle, last = levels_off(samples)
        flat &= ok
        lines.append(f"| {name} | {len(samples)} | {samples[0] / 1024:.1f} | {max(samples) / 1024:.1f} "
                     f"| {middle:.1f} | {last:.1f} | {'yes' if ok else 'NO'} |")  # fmt: skip
    report = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak.md").write_text(report)
    print(report)
    if errors:
        print(f"FAILED: {errors} errors, e.g. {[r['first_error'] for r in results if r['errors']]}")
        return 1
    if not flat:
        print("NOTE: some process's memory was still growing at the end (see the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
