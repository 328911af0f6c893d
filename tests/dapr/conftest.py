"""Fixtures of the Dapr integration tests: the event pipeline through real `daprd` sidecars.

What runs:

- a private Redis (`scripts/redis.sh start`, flushed at session start) behind the `pubsub`
  component, and a private PostgreSQL (`scripts/postgres.sh start`) with a fresh database per
  server group;
- the probe: a small Python Dapr app with its own daprd (app-id `probe`) subscribed to `tasks`,
  `notifications` and `deadletter`, recording every delivery; it also publishes test events
  through its sidecar;
- server groups: `todo-mcp --transport http --events dapr`, each replica beside its own daprd,
  reading `jwt-secret` and `database-url` from the Dapr secret store (never from its environment).
  `main_group` (app-id `mcp-server`) lives for the session; tests that stop sidecars or need
  other settings start their own groups with `start_group`.

- the scheduler, for the tests that need it (`schedulers`): the Dapr scheduler service
  (`dapr-scheduler`, session-wide, jobs in its own etcd) and `todo-scheduler` replicas (app-id
  `scheduler`), each beside a daprd pointed at that service.

Every resources dir is generated from `components/` (Redis address, secrets file, scopes; the
cron bindings only for the scheduler).

Environment (all optional):
  TODO_MCP_BIN            the binary (default <repo>/target/debug/todo-mcp)
  TODO_SCHEDULER_BIN      todo-scheduler (default <repo>/target/debug/todo-scheduler)
  TODO_DAPRD              daprd (default: `scripts/daprd.sh path`, building it if needed)
  TODO_DAPR_SCHEDULER     the Dapr scheduler service (default: beside daprd)
  TODO_TEST_REDIS_HOST    host:port of a Redis to use (default: `scripts/redis.sh start`);
                          it is FLUSHALLed at session start
  TODO_TEST_DATABASE_URL  a PostgreSQL URL whose role may create databases
                          (default: `scripts/postgres.sh start`)
  TODO_PSQL               psql (default: PSQL from `scripts/postgres.sh env`, else psql on PATH)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dapr_support import (
    JWT_SECRET,
    REPO,
    TOPIC_DEADLETTER,
    TOPIC_NOTIFICATIONS,
    TOPIC_TASKS,
    DaprScheduler,
    Daprd,
    McpServer,
    SchedulerApp,
    Postgres,
    ProbeApp,
    RedisServer,
    free_port,
    consumer_group_caught_up,
    redis_flushall,
    tail,
    wait_until,
    write_resources,
    write_tracing_config,
)

HERE = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 120
FIRST_TEST_EXTRA = 240
DAPRD_BUILD_TIME = 1800
LOGS_KEY = pytest.StashKey[list]()
# Logs of the processes that live for the whole session, shown with every failure.
SESSION_LOGS: list[tuple[str, Path]] = []
PROBE: list[ProbeApp] = []
# The event types the session's tests make the services publish where the probe hears them, each
# checked against the contract. (`com.todo.task.resynced`, the same payload as the other task
# events, is published in test_dapr_resync.py's own deployment, which the probe does not hear.)
CONTRACT_TYPES = {
    "com.todo.task.created",
    "com.todo.task.updated",
    "com.todo.task.completed",
    "com.todo.task.deleted",
    "com.todo.reminder.triggered",
    "com.todo.recurring.scheduled",
    "com.todo.resync.requested",
}


def _daprd_built() -> bool:
    if os.environ.get("TODO_DAPRD"):
        return True
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "daprd.sh"), "path"], capture_output=True, timeout=60
    )
    return out.returncode == 0


@pytest.hookimpl(trylast=True)  # after -k/-m deselection and other conftests' defaults
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    ours = [i for i in items if HERE in Path(str(i.path)).resolve().parents]
    if not ours:
        return
    # The first test also pays for starting the infrastructure, and for building daprd if needed.
    first_extra = FIRST_TEST_EXTRA if _daprd_built() else FIRST_TEST_EXTRA + DAPRD_BUILD_TIME
    for n, item in enumerate(ours):
        own = [m for m in getattr(item.obj, "pytestmark", []) if m.name == "timeout"]
        base = own[0].args[0] if own else DEFAULT_TIMEOUT
        # Prepended, so that it wins over any timeout another conftest appended.
        item.add_marker(pytest.mark.timeout(base + (first_extra if n == 0 else 0)), append=False)


# --- logs on failure ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def proc_logs(request: pytest.FixtureRequest) -> list[tuple[str, Path]]:
    """Logs of this test's processes; they are shown (with the session's) when it fails."""
    logs: list[tuple[str, Path]] = []
    request.node.stash[LOGS_KEY] = logs
    return logs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed and HERE in Path(str(item.path)).resolve().parents:
        seen = set()
        for name, path in [*item.stash.get(LOGS_KEY, []), *SESSION_LOGS]:
            if path in seen:
                continue
            seen.add(path)
            report.sections.append((f"log: {name} ({path})", tail(path, 80)))
        if PROBE:
            report.sections.append(("probe", PROBE[0].summary()))


# --- infrastructure -----------------------------------------------------------------------------


def _script(*args: str, timeout: float = 900) -> dict[str, str]:
    """Runs scripts/<args> and returns the KEY=VALUE lines it printed."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        pytest.fail(
            f"scripts/{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    values = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper():
            values[key] = value.strip()
    return values


@dataclass
class Infra:
    binary: str
    daprd: str
    redis_host: str
    pg: Postgres
    base: Path
    scheduler_binary: str
    dapr_scheduler: str


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    binary = Path(os.environ.get("TODO_MCP_BIN") or REPO / "target" / "debug" / "todo-mcp")
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            f"todo-mcp not found at {binary}: `cargo build -p mcp-server` or set TODO_MCP_BIN"
        )

    daprd = os.environ.get("TODO_DAPRD")
    if not daprd:
        probe = subprocess.run(
            ["bash", str(REPO / "scripts" / "daprd.sh"), "path"], capture_output=True, text=True
        )
        values = dict(
            line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line
        )
        daprd = values.get("DAPRD") if probe.returncode == 0 else None
        if not daprd:
            daprd = _script("daprd.sh", "build", timeout=1800).get("DAPRD")
    if not daprd or not os.access(daprd, os.X_OK):
        pytest.fail(f"no daprd (got {daprd!r}): run scripts/daprd.sh build or set TODO_DAPRD")
    dapr_scheduler = os.environ.get("TODO_DAPR_SCHEDULER") or str(
        Path(daprd).parent / "dapr-scheduler"
    )
    scheduler_binary = Path(
        os.environ.get("TODO_SCHEDULER_BIN") or REPO / "target" / "debug" / "todo-scheduler"
    )

    redis_host = os.environ.get("TODO_TEST_REDIS_HOST") or _script("redis.sh", "start").get(
        "REDIS_HOST"
    )
    if not redis_host:
        pytest.fail("scripts/redis.sh start printed no REDIS_HOST")
    # Streams and consumer groups of earlier sessions would be replayed to new consumer groups.
    redis_flushall(redis_host)

    admin_url = os.environ.get("TODO_TEST_DATABASE_URL")
    if not admin_url:
        admin_url = _script("postgres.sh", "start").get("DATABASE_URL")
    psql = os.environ.get("TODO_PSQL")
    if not psql:
        psql = _script("postgres.sh", "env").get("PSQL") or shutil.which("psql")
    if not admin_url or not psql:
        pytest.fail(f"no PostgreSQL (url {admin_url!r}, psql {psql!r})")
    pg = Postgres(admin_url, psql)
    pg.drop_leftovers()

    base = tmp_path_factory.mktemp("dapr")
    try:
        yield Infra(
            str(Path(binary).resolve()),
            daprd,
            redis_host,
            pg,
            base,
            str(scheduler_binary.resolve()),
            dapr_scheduler,
        )
    finally:
        pg.drop_created()


# --- the probe ----------------------------------------------------------------------------------


@dataclass
class Probe:
    app: ProbeApp
    daprd: Daprd

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        self.daprd.publish(topic, event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


def _runs_every_test(config: pytest.Config) -> bool:
    """Whether the session runs the whole directory (no selection), so that every event type
    the tests make the services publish is expected at the probe."""
    selected = config.option.keyword or config.option.markexpr
    return not selected and all(Path(arg).is_dir() for arg in config.args)


@pytest.fixture(scope="session")
def probe(infra: Infra, request: pytest.FixtureRequest) -> Iterator[Probe]:
    topics = [TOPIC_TASKS, TOPIC_NOTIFICATIONS, TOPIC_DEADLETTER]
    app = ProbeApp(topics).start()
    PROBE.append(app)
    resources = write_resources(
        infra.base / "probe" / "resources",
        redis_host=infra.redis_host,
        app_ids=["probe"],
        # One delivery at a time: what the probe sees is in stream order.
        pubsub_metadata={"concurrency": "1"},
    )
    log = infra.base / "probe" / "daprd.log"
    SESSION_LOGS.append(("daprd probe", log))
    daprd = Daprd(infra.daprd, "probe", app.port, resources, log)
    try:
        daprd.start()
        daprd.wait_healthy()
        daprd.wait_subscribed(set(topics))
        yield Probe(app, daprd)
        # Every event the services published during the session followed the contract, and
        # every type that crosses a topic was among them.
        assert not app.contract_errors, "events broke docs/asyncapi.json:\n" + "\n".join(
            app.contract_errors[:20]
        )
        missing = sorted(CONTRACT_TYPES - set(app.contract_checked))
        if _runs_every_test(request.config):
            assert not missing, f"no event of {missing} reached the probe to be checked: {app.contract_checked}"
    finally:
        daprd.close()
        app.stop()
        PROBE.clear()


# --- server groups ------------------------------------------------------------------------------


@dataclass
class Member:
    daprd: Daprd
    server: McpServer


@dataclass
class Group:
    """Replicas of the MCP server (same app-id, same database), each with its own sidecar."""

    app_id: str
    database_url: str
    resources: Path
    members: list[Member] = field(default_factory=list)

    @property
    def server(self) -> McpServer:
        return self.members[0].server

    @property
    def daprd(self) -> Daprd:
        return self.members[0].daprd

    def close(self) -> None:
        # Servers first: a sidecar stopping under a live server only makes the relay retry.
        for m in self.members:
            m.server.close()
        for m in self.members:
            m.daprd.close()


def write_group_resources(
    infra: Infra,
    name: str,
    app_id: str,
    secrets_data: dict[str, str],
    redis_host: str | None = None,
) -> Path:
    return write_resources(
        infra.base / name / "resources",
        redis_host=redis_host or infra.redis_host,
        app_ids=[app_id],
        secrets_data=secrets_data,
    )


def start_group(
    infra: Infra,
    logs: list[tuple[str, Path]],
    name: str,
    app_id: str,
    *,
    replicas: int = 1,
    database_url: str | None = None,
    daprd_env: dict[str, str] | None = None,
    daprd_args: list[str] | None = None,
    server_env: dict[str, str] | None = None,
    redis_host: str | None = None,
) -> Group:
    """Starts a group; `redis_host` puts its components on a Redis other than the session's."""
    url = database_url or infra.pg.create_database()
    resources = write_group_resources(
        infra, name, app_id, {"jwt-secret": JWT_SECRET, "database-url": url}, redis_host
    )
    config = write_tracing_config(infra.base / name / "tracing.yaml")
    group = Group(app_id, url, resources)
    try:
        for n in range(replicas):
            app_port = free_port()
            dlog = infra.base / name / f"daprd-{n}.log"
            slog = infra.base / name / f"server-{n}.log"
            logs.extend([(f"daprd {name}[{n}]", dlog), (f"todo-mcp {name}[{n}]", slog)])
            daprd = Daprd(
                infra.daprd, app_id, app_port, resources, dlog,
                env=daprd_env, config=config, args=daprd_args,
            )  # fmt: skip
            daprd.start()
            server = McpServer(
                infra.binary, f"{name}[{n}]", daprd.grpc_port, app_port, slog, env=server_env
            )
            group.members.append(Member(daprd, server))
            server.start()
        for m in group.members:
            m.daprd.wait_healthy()
            m.daprd.wait_subscribed({TOPIC_TASKS, TOPIC_NOTIFICATIONS})
    except BaseException:
        group.close()
        raise
    return group


@pytest.fixture(scope="session")
def main_group(infra: Infra, probe: Probe) -> Iterator[Group]:
    """One server (app-id `mcp-server`) for the whole session."""
    group = start_group(infra, SESSION_LOGS, "main", "mcp-server")
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def main(main_group: Group) -> McpServer:
    return main_group.server


@pytest.fixture
def groups(infra: Infra, probe: Probe, proc_logs: list[tuple[str, Path]]) -> Iterator[Any]:
    """`groups(name, app_id, **options)` starts a server group that is stopped after the test."""
    started: list[Group] = []

    def start(name: str, app_id: str, **options: Any) -> Group:
        group = start_group(infra, proc_logs, name, app_id, **options)
        started.append(group)
        return group

    try:
        yield start
    finally:
        for g in started:
            g.close()


# --- the scheduler ------------------------------------------------------------------------------

SCHEDULER_APP_ID = "scheduler"


@pytest.fixture(scope="session")
def dapr_scheduler(infra: Infra) -> Iterator[DaprScheduler]:
    """The Dapr scheduler service, for the whole session."""
    for path in (infra.dapr_scheduler, infra.scheduler_binary):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: run scripts/daprd.sh build / cargo build")
    log = infra.base / "dapr-scheduler" / "dapr-scheduler.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    SESSION_LOGS.append(("dapr-scheduler", log))
    service = DaprScheduler(infra.dapr_scheduler, infra.base / "dapr-scheduler" / "etcd", log)
    try:
        yield service.start()
    finally:
        service.stop()


@dataclass
class SchedulerMember:
    daprd: Daprd
    app: SchedulerApp


@dataclass
class SchedulerGroup:
    """Replicas of todo-scheduler (app-id `scheduler`), each with its own sidecar."""

    members: list[SchedulerMember] = field(default_factory=list)

    @property
    def app(self) -> SchedulerApp:
        return self.members[0].app

    def close(self) -> None:
        for m in self.members:
            m.app.close()
        for m in self.members:
            m.daprd.close()


@pytest.fixture
def schedulers(
    infra: Infra,
    probe: Probe,
    dapr_scheduler: DaprScheduler,
    proc_logs: list[tuple[str, Path]],
) -> Iterator[Any]:
    """`schedulers(replicas=1, **resource_options)` starts todo-scheduler replicas, stopped after
    the test. One app-id for all: its consumer group, state and jobs carry over between tests,
    as they would across deployments (`redis_host`: its components on a Redis of the test's own,
    with a state and consumer group of their own; the jobs stay shared)."""
    started: list[SchedulerGroup] = []

    def start(
        replicas: int = 1,
        pubsub_metadata: dict[str, str] | None = None,
        cron_schedule: str = "@every 1m",
        env: dict[str, str] | None = None,
        app_token: str | None = None,
        redis_host: str | None = None,
    ) -> SchedulerGroup:
        name = f"scheduler-{len(started)}"
        redis_host = redis_host or infra.redis_host
        resources = write_resources(
            infra.base / name / "resources",
            redis_host=redis_host,
            app_ids=[SCHEDULER_APP_ID],
            pubsub_metadata=pubsub_metadata,
            cron_schedule=cron_schedule,
        )
        group = SchedulerGroup()
        started.append(group)
        for n in range(replicas):
            app_port = free_port()
            dlog = infra.base / name / f"daprd-{n}.log"
            alog = infra.base / name / f"app-{n}.log"
            proc_logs.extend([(f"daprd {name}[{n}]", dlog), (f"todo-scheduler {name}[{n}]", alog)])
            token = {"APP_API_TOKEN": app_token} if app_token else {}
            daprd = Daprd(
                infra.daprd,
                SCHEDULER_APP_ID,
                app_port,
                resources,
                dlog,
                env=token,
                scheduler_address=dapr_scheduler.address,
            )
            daprd.start()
            app = SchedulerApp(
                infra.scheduler_binary,
                f"{name}[{n}]",
                app_port,
                daprd.grpc_port,
                alog,
                {**(env or {}), **token},
            )
            group.members.append(SchedulerMember(daprd, app))
            app.start()
        for m in group.members:
            m.daprd.wait_healthy()
            m.daprd.wait_subscribed({TOPIC_TASKS})
        # Events other tests published before the scheduler ran are worked off first, so that
        # the test's own timings measure its own events.
        wait_until(
            lambda: consumer_group_caught_up(redis_host, TOPIC_TASKS, SCHEDULER_APP_ID),
            timeout=120,
            what="the scheduler to catch up with the `tasks` stream",
            interval=0.2,
        )
        return group

    try:
        yield start
    finally:
        for g in started:
            g.close()


# --- a Redis of the test's own ------------------------------------------------------------------


@pytest.fixture
def own_redis(
    infra: Infra, proc_logs: list[tuple[str, Path]], tmp_path: Path
) -> Iterator[RedisServer]:
    """A started redis-server of the test's own (own port and dir, nothing on disk), for tests
    that wipe or restart Redis without disturbing the others: pass its `host` as `redis_host` to
    `groups(...)` and `schedulers(...)`. Request it before them, so that it stops after them."""
    binary = _script("redis.sh", "env").get("REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        pytest.fail("no redis-server (scripts/redis.sh env printed no REDIS_SERVER)")
    server = RedisServer(binary, tmp_path / "redis")
    proc_logs.append(("redis (the test's own)", server.log))
    try:
        yield server.start()
    finally:
        server.kill()
