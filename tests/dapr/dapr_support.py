"""Helpers of the Dapr integration tests: processes, components, the probe subscriber, MCP calls.

Everything here is synchronous (threads, not asyncio): the probe is a `ThreadingHTTPServer`, MCP
is called with plain HTTP POSTs, and processes are subprocesses in their own process groups.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from contract import Contract  # noqa: E402
from server import clean_env, tail  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = REPO / "components"

# The HS256 secret every server of the session finds in its Dapr secret store (never in its
# environment). Random per session: a token signed with it being accepted proves where it came from.
JWT_SECRET = "dapr-it-" + secrets.token_hex(24)

PUBSUB = "pubsub"
TOPIC_TASKS = "tasks"
TOPIC_NOTIFICATIONS = "notifications"
TOPIC_DEADLETTER = "deadletter"
TASKS_SOURCE = "/mcp-server/tasks"
RECURRING = "com.todo.recurring.scheduled"
REMINDER = "com.todo.reminder.triggered"
SCHEDULER_SOURCE = "/scheduler"
# The app token every sidecar presents to its app, as the chart gives each pair one: the
# services refuse to start beside a sidecar without it. Tests of the token pass their own.
APP_TOKEN = "app-" + secrets.token_hex(16)
# The one service that publishes each type: consumers refuse the type from any other `source`.
SOURCES = {RECURRING: SCHEDULER_SOURCE, REMINDER: SCHEDULER_SOURCE}
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

Y = datetime.now(timezone.utc).year + 3

SERVER_LOG_LEVEL = "info,mcp_server=debug"


# --- small things -------------------------------------------------------------------------------


def free_port() -> int:
    """A port to listen on, below the kernel's ephemeral range: a port the kernel hands out could
    be taken, before its listener binds it, as the local end of one of the many connections the
    sidecars open (it happened: todo-mcp's app port, "Address already in use")."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(100):
        port = secrets.randbelow(low - 10_000) + 10_000 if low > 11_000 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AssertionError("no free port below the ephemeral range")


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.1,
    diagnose: Callable[[], str] | None = None,
) -> Any:
    """Calls `check` until it returns something truthy (returned) or `timeout` passes (fails)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - a probe that is not up yet
            last_error = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_error!r})" if last_error else ""
            if diagnose is not None:
                extra += "\n" + diagnose()
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def micros(dt: datetime) -> int:
    """`DateTime::timestamp_micros` of a whole-second UTC time (exact, no float rounding)."""
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def occurrence_task_id(series_id: str, due: datetime) -> str:
    """`todo_shared::events::occurrence_task_id`: UUIDv5(series_id, str(due in micros))."""
    return str(uuid.uuid5(uuid.UUID(series_id), str(micros(due))))


def notification_id(reminder_id: str, fire_at: datetime) -> str:
    """`todo_shared::events::notification_id`: UUIDv5(reminder_id, str(fire_at in micros))."""
    return str(uuid.uuid5(uuid.UUID(reminder_id), str(micros(fire_at))))


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cloud_event(
    event_type: str,
    data: Any,
    *,
    subject: str | None = None,
    event_id: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """An event as its producer publishes it: by default from the service that publishes its
    type (consumers refuse another `source`)."""
    event = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source or SOURCES.get(event_type, "/dapr-it/probe"),
        "type": event_type,
        "datacontenttype": "application/json",
        "time": rfc3339(datetime.now(timezone.utc)),
        "data": data,
    }
    if subject:
        event["subject"] = subject
    return event


# --- processes ----------------------------------------------------------------------------------


class Proc:
    """A subprocess in its own process group, logging stdout and stderr to one file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        with open(self.log, "ab") as log:
            log.write(f"\n===== start {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.log.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM to the process group, SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Anything the process left in its group.
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.returncode


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --- components ---------------------------------------------------------------------------------


def write_resources(
    dest: Path,
    *,
    redis_host: str,
    app_ids: Iterable[str],
    secrets_data: dict[str, Any] | None = None,
    pubsub_metadata: dict[str, str] | None = None,
    cron_schedule: str | None = None,
    secretstore_metadata: dict[str, str] | None = None,
) -> Path:
    """Writes a resources dir derived from `components/`: Redis at `redis_host`, the secret store
    reading `secrets_data` from a file of its own (left out when None), `app_ids` added to the
    scopes of every component the MCP server (or, for the scheduler's own components, the
    scheduler) is in, pub/sub metadata set or added. The cron bindings are left out unless
    `cron_schedule` is given (then they run on that schedule)."""
    dest.mkdir(parents=True, exist_ok=True)
    app_ids = list(app_ids)
    written = []
    for src in sorted(COMPONENTS.glob("*.yaml")):
        text = src.read_text()
        if "type: bindings.cron" in text:
            if cron_schedule is None:
                continue
            text = _set_metadata(text, {"schedule": cron_schedule}, src)
        if "type: secretstores.local.file" in text:
            if secrets_data is None:
                continue
            # Beside the resources dir, not in it: daprd would try to load it as a resource.
            secrets_file = dest.parent / f"{dest.name}-secrets.json"
            secrets_file.write_text(json.dumps(secrets_data))
            text = _replace_once(text, "./components/secrets.dev.json", str(secrets_file), src)
            if secretstore_metadata:
                text = _set_metadata(text, secretstore_metadata, src)
        if "name: redisHost" in text:
            text, n = re.subn(r"(- name: redisHost\n\s+value: ).*", rf"\g<1>{redis_host}", text)
            assert n == 1, f"{src}: cannot set redisHost"
        if pubsub_metadata and "type: pubsub.redis" in text:
            text = _set_metadata(text, pubsub_metadata, src)
        # The test apps stand in for the MCP server: they join the scopes of its components.
        scopes = re.search(r"^scopes:\n((?:  - \S+\n?)+)\Z", text, re.M)
        assert scopes, f"{src}: expected a trailing `scopes:` list"
        scoped = re.findall(r"  - (\S+)", scopes.group(1))
        if "mcp-server" in scoped or "scheduler" in scoped:
            added = [a for a in app_ids if a not in scoped]
            text = text.rstrip("\n") + "".join(f"\n  - {a}" for a in added) + "\n"
        (dest / src.name).write_text(text)
        written.append(src.name)
    assert "pubsub.yaml" in written, written
    return dest


TRACING_CONFIG = """\
# As in the default configuration of a self-hosted Dapr (`dapr init`): trace every request.
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: tracing
spec:
  tracing:
    samplingRate: "1"
"""


def write_tracing_config(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TRACING_CONFIG)
    return path


def _set_metadata(text: str, values: dict[str, str], src: Path) -> str:
    """Sets each metadata item of a component, replacing the value it has or adding it."""
    for k, v in values.items():
        text, n = re.subn(
            rf"(- name: {re.escape(k)}\n\s+value: ).*", rf"\g<1>{json.dumps(v)}", text
        )
        if n == 0:
            item = f"    - name: {k}\n      value: {json.dumps(v)}\n"
            text = _replace_once(text, "  metadata:\n", "  metadata:\n" + item, src)
    return text


def _replace_once(text: str, old: str, new: str, src: Path) -> str:
    assert text.count(old) == 1, f"{src}: expected `{old.strip()}` exactly once"
    return text.replace(old, new)


# --- daprd --------------------------------------------------------------------------------------


class Daprd:
    """One sidecar. Its ports are fixed at construction: `restart` comes back on the same ones."""

    def __init__(
        self,
        binary: str,
        app_id: str,
        app_port: int,
        resources: Path,
        log: Path,
        env: dict[str, str] | None = None,
        config: Path | None = None,
        scheduler_address: str | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_port = app_port
        self.http_port = free_port()
        self.grpc_port = free_port()
        argv = [
            binary,
            "--app-id", app_id,
            "--app-port", str(app_port),
            "--app-protocol", "http",
            "--dapr-http-port", str(self.http_port),
            "--dapr-grpc-port", str(self.grpc_port),
            "--enable-metrics=false",
            "--resources-path", str(resources),
            "--log-level", "info",
            "--dapr-graceful-shutdown-seconds", "2",
        ]  # fmt: skip
        if config is not None:
            argv += ["--config", str(config)]
        if scheduler_address is not None:
            # The Dapr scheduler service: the Jobs API and its callbacks need it.
            argv += ["--scheduler-host-address", scheduler_address]
        argv += args or []
        env = {"APP_API_TOKEN": APP_TOKEN, **(env or {})}
        self.proc = Proc(f"daprd {app_id}", argv, clean_env(**env), log)
        self.http = httpx2.Client(base_url=self.base, timeout=10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.proc.log

    def start(self, timeout: float = 60) -> Daprd:
        for attempt in range(3):
            self.proc.start()
            try:
                self.wait_outbound(timeout)
                return self
            except AssertionError:
                # A port picked by free_port() was taken meanwhile: pick others and try again.
                taken = "address already in use" in tail(self.log, 30)
                if attempt == 2 or self.proc.alive() or not taken:
                    raise
                self._set_ports(free_port(), free_port())
        return self

    def _set_ports(self, http_port: int, grpc_port: int) -> None:
        argv = self.proc.argv
        argv[argv.index("--dapr-http-port") + 1] = str(http_port)
        argv[argv.index("--dapr-grpc-port") + 1] = str(grpc_port)
        self.http_port, self.grpc_port = http_port, grpc_port
        self.http.close()
        self.http = httpx2.Client(base_url=self.base, timeout=10)

    def wait_outbound(self, timeout: float = 60) -> None:
        """Up and its components loaded (it may still wait for the app)."""

        def ready() -> bool:
            if not self.proc.alive():
                raise AssertionError(
                    f"daprd {self.app_id} exited with {self.proc.returncode()}:\n{tail(self.log)}"
                )
            return self.http.get("/v1.0/healthz/outbound").status_code == 204

        wait_until(ready, timeout, f"daprd {self.app_id} (outbound healthz)")

    def wait_healthy(self, timeout: float = 60) -> None:
        """Fully up: the app channel is established (and so are the subscriptions)."""

        def ready() -> bool:
            if not self.proc.alive():
                raise AssertionError(
                    f"daprd {self.app_id} exited with {self.proc.returncode()}:\n{tail(self.log)}"
                )
            return self.http.get("/v1.0/healthz").status_code == 204

        wait_until(ready, timeout, f"daprd {self.app_id} (healthz)")

    def subscriptions(self) -> list[dict[str, Any]]:
        r = self.http.get("/v1.0/metadata")
        r.raise_for_status()
        return r.json().get("subscriptions") or []

    def wait_subscribed(self, topics: set[str], timeout: float = 30) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            subs = self.subscriptions()
            return subs if topics <= {s.get("topic") for s in subs} else None

        return wait_until(
            check, timeout, f"daprd {self.app_id} to subscribe to {sorted(topics)}",
            diagnose=lambda: f"metadata subscriptions: {self.subscriptions()!r}",
        )  # fmt: skip

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Publishes a structured CloudEvent as is (`application/cloudevents+json`)."""
        r = self.http.post(
            f"/v1.0/publish/{PUBSUB}/{topic}",
            content=json.dumps(event).encode(),
            headers={"Content-Type": "application/cloudevents+json"},
        )
        assert r.status_code == 204, f"publish to {topic}: {r.status_code} {r.text}"

    def stop(self, timeout: float = 15) -> int | None:
        return self.proc.stop(timeout)

    def restart(self, timeout: float = 60) -> None:
        self.proc.start()
        self.wait_outbound(timeout)

    def close(self) -> None:
        self.stop()
        self.http.close()


# --- the Dapr scheduler service and todo-scheduler ---------------------------------------------


class DaprScheduler:
    """The Dapr scheduler control-plane service (jobs in an embedded etcd), built from the same Go
    module as daprd. Its ports are fixed at construction, so a restart comes back on them."""

    def __init__(self, binary: str, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.etcd_client_port = free_port()
        self.etcd_peer_port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--listen-address", "127.0.0.1",
            "--port", str(self.port),
            "--healthz-listen-address", "127.0.0.1",
            "--healthz-port", str(free_port()),
            "--metrics-listen-address", "127.0.0.1",
            "--metrics-port", str(free_port()),
            "--etcd-data-dir", str(data_dir),
            "--etcd-client-listen-address", "127.0.0.1",
            "--etcd-client-port", str(self.etcd_client_port),
            "--etcd-initial-cluster",
            f"dapr-scheduler-server-0=http://127.0.0.1:{self.etcd_peer_port}",
            "--id", "dapr-scheduler-server-0",
            "--log-level", "info",
        ]  # fmt: skip
        self.proc = Proc("dapr-scheduler", argv, clean_env(), log)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> DaprScheduler:
        self.proc.start()

        def serving() -> bool:
            if not self.proc.alive():
                raise AssertionError(f"dapr-scheduler exited:\n{tail(self.proc.log)}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_until(serving, timeout, "the Dapr scheduler service")
        return self

    def stop(self) -> int | None:
        return self.proc.stop()


class SchedulerApp:
    """`todo-scheduler` (the app behind a daprd with app-id `scheduler`)."""

    def __init__(
        self,
        binary: str,
        name: str,
        app_port: int,
        dapr_grpc_port: int,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.app_port = app_port
        argv = [binary, "--listen", f"127.0.0.1:{app_port}"]
        env = clean_env(**{"DAPR_GRPC_PORT": str(dapr_grpc_port), "RUST_LOG": "info,todo_scheduler=debug",
                           "APP_API_TOKEN": APP_TOKEN, **(env or {})})  # fmt: skip
        self.proc = Proc(f"todo-scheduler {name}", argv, env, log)
        self.http = httpx2.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=10)

    @property
    def log(self) -> Path:
        return self.proc.log

    def start(self, timeout: float = 60) -> SchedulerApp:
        self.proc.start()

        def healthy() -> bool:
            if not self.proc.alive():
                raise AssertionError(
                    f"todo-scheduler {self.name} exited with {self.proc.returncode()}:\n"
                    f"{tail(self.log)}"
                )
            return self.http.get("/healthz", timeout=2).status_code == 200

        wait_until(healthy, timeout, f"todo-scheduler {self.name} (/healthz)")
        return self

    def kill(self) -> None:
        """SIGKILL: no graceful anything, as a crash or an OOM kill."""
        assert self.proc.proc is not None
        _signal_group(self.proc.proc.pid, signal.SIGKILL)
        self.proc.proc.wait(10)

    def fired(self) -> int:
        """How many reminders this process has fired, from its log."""
        return self.log.read_text(errors="replace").count("reminder fired")

    def close(self) -> None:
        self.proc.stop()
        self.http.close()


# --- the MCP server -----------------------------------------------------------------------------


class McpServer:
    """`todo-mcp --transport http --events dapr` beside a sidecar."""

    def __init__(
        self,
        binary: str,
        name: str,
        dapr_grpc_port: int,
        app_port: int,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.app_port = app_port
        argv = [
            binary,
            "--transport", "http",
            "--listen", f"127.0.0.1:{self.port}",
            "--app-listen", f"127.0.0.1:{app_port}",
            "--events", "dapr",
        ]  # fmt: skip
        self.env = clean_env(
            DAPR_GRPC_PORT=str(dapr_grpc_port), RUST_LOG=SERVER_LOG_LEVEL, APP_API_TOKEN=APP_TOKEN
        )
        self.env.update(env or {})
        self.proc = Proc(f"todo-mcp {name}", argv, self.env, log)
        self.http = httpx2.Client(base_url=self.base, timeout=30)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.proc.log

    def start(self, timeout: float = 90) -> McpServer:
        def healthy() -> bool:
            if not self.proc.alive():
                raise AssertionError(
                    f"todo-mcp {self.name} exited with {self.proc.returncode()}:\n{tail(self.log)}"
                )
            return self.http.get("/healthz", timeout=2).status_code == 200

        for attempt in range(3):
            self.proc.start()
            try:
                wait_until(healthy, timeout, f"todo-mcp {self.name} (/healthz)")
                return self
            except AssertionError:
                # The public port picked by free_port() was taken meanwhile: pick another.
                taken = f"cannot listen on 127.0.0.1:{self.port}" in tail(self.log, 10)
                if attempt == 2 or self.proc.alive() or not taken:
                    raise
                self.port = free_port()
                self.proc.argv[self.proc.argv.index("--listen") + 1] = f"127.0.0.1:{self.port}"
                self.http.close()
                self.http = httpx2.Client(base_url=self.base, timeout=30)
        return self

    def readyz(self) -> dict[str, Any]:
        r = self.http.get("/readyz")
        assert r.status_code == 200, f"/readyz: {r.status_code} {r.text}"
        return r.json()

    def pending(self) -> int:
        return int(self.readyz()["outbox"]["pending"])

    def client(self, user: str, secret: str = JWT_SECRET) -> Mcp:
        return Mcp(f"{self.base}/mcp", user, secret)

    def stop(self, timeout: float = 15) -> int | None:
        return self.proc.stop(timeout)

    def close(self) -> None:
        self.stop()
        self.http.close()


def mint_token(sub: str, secret: str = JWT_SECRET, exp_in: int = 600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + exp_in}, secret, algorithm="HS256")


class ToolError(AssertionError):
    pass


class Mcp:
    """Stateless MCP over streamable HTTP: one `tools/call` per POST, the answer read from SSE."""

    def __init__(self, url: str, user: str, secret: str = JWT_SECRET) -> None:
        self.url = url
        self.user = user
        self.http = httpx2.Client(
            timeout=30,
            headers={
                "Authorization": f"Bearer {mint_token(user, secret)}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
        )
        self._ids = 0

    def post(self, method: str, params: dict[str, Any]) -> httpx2.Response:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        return self.http.post(self.url, content=json.dumps(body).encode())

    def call_raw(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        r = self.post("tools/call", {"name": tool, "arguments": args})
        assert r.status_code == 200, f"{tool}: HTTP {r.status_code}: {r.text[:500]}"
        message = _jsonrpc_message(r)
        assert "result" in message, f"{tool}: JSON-RPC error {message}"
        return message["result"]

    def call(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """A tool call that must succeed; returns its structured content."""
        result = self.call_raw(tool, args or {})
        if result.get("isError"):
            texts = [c.get("text", "") for c in result.get("content", [])]
            raise ToolError(f"{tool}({args!r}) failed: {texts}")
        data = result.get("structuredContent")
        assert isinstance(data, dict), f"{tool}: no structured content: {result}"
        return data

    def add_task(self, title: str, **fields: Any) -> dict[str, Any]:
        return self.call("add_task", {"title": title, **fields})["task"]

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self.call("get_task", {"task_id": task_id})["task"]

    def list_all(self) -> dict[str, Any]:
        return self.call("list_tasks", {"status": "all", "limit": 200})

    def close(self) -> None:
        self.http.close()


def _jsonrpc_message(r: httpx2.Response) -> dict[str, Any]:
    ctype = r.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return r.json()
    messages = []
    for line in r.text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload:
                messages.append(json.loads(payload))
    answers = [m for m in messages if "result" in m or "error" in m]
    assert answers, f"no JSON-RPC answer in the SSE stream: {r.text[:500]}"
    return answers[-1]


# --- the probe: a subscriber app with its own sidecar -------------------------------------------


@dataclass
class Delivery:
    """One request daprd made to the probe app."""

    topic: str
    headers: dict[str, str]
    event: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str | None:
        return self.event.get("id")

    @property
    def type(self) -> str | None:
        return self.event.get("type")

    @property
    def subject(self) -> str | None:
        return self.event.get("subject")


class ProbeApp:
    """A Dapr app (threading http.server) that subscribes programmatically to `topics`, records
    every delivery, and answers SUCCESS. Every event a service published is checked against the
    contract (docs/asyncapi.json) as it arrives: `contract_errors` lists what broke it, and
    `contract_checked` counts the events checked by type."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        self.deliveries: list[Delivery] = []
        self.contract = Contract()
        self.contract_checked: dict[str, int] = {}
        self.contract_errors: list[str] = []
        self.cond = threading.Condition()
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="probe", daemon=True)

    def start(self) -> ProbeApp:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def subscription_list(self) -> list[dict[str, Any]]:
        return [{"pubsubname": PUBSUB, "topic": t, "route": f"/events/{t}"} for t in self.topics]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        probe = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/dapr/subscribe":
                    self._reply(200, probe.subscription_list())
                else:
                    self._reply(404, {"error": "not found"})

            def do_OPTIONS(self) -> None:  # noqa: N802
                self._reply(200, {})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                topic = self.path.removeprefix("/events/")
                if topic not in probe.topics:
                    self._reply(404, {"error": "not found"})
                    return
                try:
                    event = json.loads(raw)
                except ValueError:
                    event = {"_raw": raw.decode(errors="replace")}
                headers = {k.lower(): v for k, v in self.headers.items()}
                if topic != TOPIC_DEADLETTER and probe.contract.is_ours(event):
                    errors = probe.contract.errors(event)
                    with probe.cond:
                        kind = str(event.get("type"))
                        probe.contract_checked[kind] = probe.contract_checked.get(kind, 0) + 1
                        probe.contract_errors.extend(f"{kind} {event.get('id')}: {e}" for e in errors)
                with probe.cond:
                    probe.deliveries.append(Delivery(topic, headers, event))
                    probe.cond.notify_all()
                self._reply(200, {"status": "SUCCESS"})

        return Handler

    # --- observing ---

    def snapshot(self, topic: str | None = None) -> list[Delivery]:
        with self.cond:
            return [d for d in self.deliveries if topic is None or d.topic == topic]

    def wait_for(
        self, check: Callable[[list[Delivery]], Any], timeout: float, what: str
    ) -> Any:
        """Waits until `check(all deliveries so far)` returns something truthy, and returns it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = check(list(self.deliveries))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout:.0f}s waiting for {what}; "
                        f"the probe has {self.summary()}"
                    )
                self.cond.wait(min(left, 0.5))

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for d in self.deliveries:
            key = f"{d.topic}:{d.type}"
            counts[key] = counts.get(key, 0) + 1
        return f"{len(self.deliveries)} deliveries {counts}"


def created_events(deliveries: list[Delivery], task_ids: set[str]) -> list[Delivery]:
    """The `com.todo.task.created` deliveries on `tasks` about `task_ids`."""
    return [
        d
        for d in deliveries
        if d.topic == TOPIC_TASKS and d.type == "com.todo.task.created" and d.subject in task_ids
    ]


# --- PostgreSQL ---------------------------------------------------------------------------------


class Postgres:
    """Creates and drops the tests' databases through psql."""

    def __init__(self, admin_url: str, psql: str) -> None:
        self.admin_url = admin_url
        self.psql_bin = psql
        self.created: list[str] = []

    def run(self, url: str, sql: str) -> str:
        out = subprocess.run(
            [self.psql_bin, "-d", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert out.returncode == 0, f"psql {sql!r}: {out.stderr}"
        return out.stdout

    def url_for(self, name: str) -> str:
        base, _, query = self.admin_url.partition("?")
        base = base.rsplit("/", 1)[0] + "/" + name
        return f"{base}?{query}" if query else base

    def create_database(self) -> str:
        name = f"test_dapr_{uuid.uuid4().hex[:12]}"
        self.run(self.admin_url, f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_for(name)

    def drop_leftovers(self) -> None:
        names = self.run(
            self.admin_url, r"SELECT datname FROM pg_database WHERE datname LIKE 'test\_dapr\_%'"
        ).split()
        for name in names:
            self.drop(name)

    def drop(self, name: str) -> None:
        try:
            self.run(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except AssertionError:
            pass

    def drop_created(self) -> None:
        for name in self.created:
            self.drop(name)
        self.created.clear()


def redis_command(host: str, *args: str) -> Any:
    """One Redis command over RESP (no client library needed); returns the decoded reply."""
    h, _, p = host.rpartition(":")
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((h or "127.0.0.1", int(p)), timeout=10) as s:
        s.sendall(request.encode())
        return _resp_read(s.makefile("rb"))


def _resp_read(f: Any) -> Any:
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError(f"Redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise AssertionError(f"unexpected RESP reply {line!r}")


def consumer_group_caught_up(host: str, stream: str, group: str) -> bool:
    """Whether `group` has read everything in `stream` and acknowledged it all."""
    for info in redis_command(host, "XINFO", "GROUPS", stream):
        fields = dict(zip(info[::2], info[1::2], strict=True))
        if fields.get("name") == group:
            return fields.get("pending") == 0 and fields.get("lag") == 0
    return False


def redis_flushall(host: str) -> None:
    """FLUSHALL on the private test Redis (RESP by hand: no client library needed)."""
    h, _, p = host.rpartition(":")
    with socket.create_connection((h or "127.0.0.1", int(p)), timeout=10) as s:
        s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        reply = s.recv(64)
    assert reply.startswith(b"+OK"), f"FLUSHALL on {host}: {reply!r}"


def redis_keys(host: str, pattern: str) -> list[str]:
    """The keys matching `pattern` (SCAN, so a large keyspace is not blocked). Dapr's Redis state
    store keeps key `k` of app `a` as `a||k`."""
    keys: list[str] = []
    cursor = "0"
    while True:
        cursor, batch = redis_command(host, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
        keys.extend(batch)
        if cursor == "0":
            return sorted(set(keys))


def stream_events(host: str, stream: str) -> list[dict[str, Any]]:
    """The CloudEvents Dapr's Redis pub/sub holds in `stream` (a topic), oldest first: whatever
    was published since the stream began, read or not, up to its length bound."""
    events = []
    for _entry_id, fields in redis_command(host, "XRANGE", stream, "-", "+") or []:
        data = dict(zip(fields[::2], fields[1::2], strict=True)).get("data")
        events.append(json.loads(data) if data else {})
    return events


class RedisServer:
    """A redis-server of one test's own (own port and dir, started as `scripts/redis.sh` starts
    the session's), for tests that lose Redis without disturbing the others. Without
    `persistent` it keeps nothing on disk (no RDB, no AOF) and each start is in a fresh dir, so
    `kill` and `start` are a Redis restarted without persistence on the same port (a Redis pod
    rescheduled onto an `emptyDir`); `persistent` keeps an append-only file across restarts."""

    def __init__(self, binary: str, base: Path, persistent: bool = False) -> None:
        self.binary = binary
        self.base = base
        self.persistent = persistent
        self.port = free_port()
        self.starts = 0
        self.proc: Proc | None = None
        base.mkdir(parents=True, exist_ok=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.base / "redis.log"

    def start(self, timeout: float = 30) -> RedisServer:
        assert self.proc is None or not self.proc.alive(), f"redis on {self.host} is running"
        self.starts += 1
        data = self.base / ("data" if self.persistent else f"data-{self.starts}")
        data.mkdir(exist_ok=True)
        argv = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(data), "--save", ""]  # fmt: skip
        argv += (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                 else ["--appendonly", "no"])  # fmt: skip
        self.proc = Proc(f"redis {self.host}", argv, clean_env(), self.log).start()

        def up() -> bool:
            if not self.proc.alive():
                raise AssertionError(f"redis-server on {self.host} exited:\n{tail(self.log)}")
            return redis_command(self.host, "PING") == "PONG"

        wait_until(up, timeout, f"redis-server on {self.host}")
        return self

    def kill(self) -> None:
        """SIGKILL: gone at once, nothing saved (as a node lost)."""
        if self.proc is not None and self.proc.alive():
            _signal_group(self.proc.proc.pid, signal.SIGKILL)
            self.proc.proc.wait(10)

    def flushall(self) -> None:
        redis_flushall(self.host)


# --- scenario helpers ---------------------------------------------------------------------------


def new_user() -> str:
    return f"dapr-{uuid.uuid4()}"


def processed(pg: Postgres, url: str, consumer: str, ids: Iterable[str]) -> set[str]:
    """The event ids among `ids` that `consumer` has recorded as processed."""
    quoted = ", ".join(f"'{i}'" for i in ids)
    out = pg.run(
        url,
        f"SELECT event_id FROM processed_events WHERE consumer = '{consumer}' "
        f"AND event_id IN ({quoted})",
    )
    return set(out.split())


def recurring_series(mcp: Mcp) -> tuple[dict, str, datetime]:
    """A daily task; returns it, its series id and the due time of its next occurrence."""
    due = datetime(Y, 1, 10, 9, 0, tzinfo=timezone.utc)
    task = mcp.add_task(
        "Water the plants", due=rfc3339(due), time_zone="UTC", recurrence={"frequency": "daily"}
    )
    assert task["recurrence"] is not None, task
    return task, task["recurrence"]["series_id"], due + timedelta(days=1)


def scheduled(
    user: str, task: dict, series: str, due: datetime, event_id: str | None = None
) -> dict:
    """A `com.todo.recurring.scheduled` event for the occurrence of `series` due at `due`."""
    occurrence = occurrence_task_id(series, due)
    data = {
        "owner": user,
        "series_id": series,
        "previous_task_id": task["id"],
        "task_id": occurrence,
        "due": rfc3339(due),
    }
    return cloud_event(RECURRING, data, subject=occurrence, event_id=event_id)


def reminder_triggered(user: str, task: dict, reminder_id: str, fire_at: datetime) -> dict:
    data = {
        "owner": user,
        "task_id": task["id"],
        "reminder_id": reminder_id,
        "title": task["title"],
        "fire_at": rfc3339(fire_at),
        "due": task["due"],
    }
    return cloud_event(REMINDER, data, subject=task["id"])


# --- Prometheus ---------------------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    r = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    samples = []
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, f"not a Prometheus sample: {line!r}"
            samples.append((m[1], dict(LABEL.findall(m[2] or "")), float(m[3])))
    return samples


def value(samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    return sum(
        v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items())
    )
