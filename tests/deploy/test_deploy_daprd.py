"""The chart's Dapr components, Resiliency and Configuration, as rendered, in a real daprd.

Two sidecars run as in the cluster: app-id `scheduler` and app-id `mcp-server`, each beside a
small Python app that subscribes to the topics, with the chart's app and API tokens. The
components differ from the rendered ones only where a machine without a cluster needs it (see
`deploy_support.local_components`): a local file for the Kubernetes secret store, the test
Redis, and cron schedules of a second.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from deploy_support import REPO, SECRET, Helm, daprd_binary, local_dapr, redis_for_tests

sys.path.insert(0, str(REPO / "tests" / "dapr"))
from dapr_support import Daprd, tail, wait_until  # noqa: E402

# The first test also pays for starting both sidecars (and building daprd when not cached).
pytestmark = pytest.mark.timeout(300)

# A Redis database of this module's own (tests/dapr use 0, test_deploy_pods 10).
REDIS_DB = 9
TOPICS = ["tasks", "notifications", "deadletter"]
APP_TOKEN = "app-" + uuid.uuid4().hex
API_TOKEN = "api-" + uuid.uuid4().hex
SECRETS = {"jwt-secret": "j" * 48, "database-url": "postgres://todo:pw@todo-postgresql:5432/todo"}


# --- the apps beside the sidecars ---------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class App:
    """A Dapr app: subscribes to TOPICS programmatically, answers SUCCESS to every event (but a
    500 to the first delivery of an event id in `fail_once`) and 200 to the cron triggers, and
    records every request daprd makes."""

    requests: list[Request] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    fail_once: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                with app.cond:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    app.requests.append(Request(method, self.path, headers, body))
                    app.cond.notify_all()
                if method == "GET" and self.path == "/dapr/subscribe":
                    reply: Any = [
                        {"pubsubname": "pubsub", "topic": t, "route": f"/events/{t}"}
                        for t in TOPICS
                    ]
                elif self.path.startswith("/events/"):
                    reply = {"status": "SUCCESS"}
                else:
                    reply = {}
                status = 200
                event_id = body.get("id") if isinstance(body, dict) else None
                with app.cond:
                    if event_id in app.fail_once:
                        app.fail_once.discard(event_id)
                        status, reply = 500, {"error": "failing once on purpose"}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_OPTIONS(self) -> None:  # noqa: N802
                self._handle("OPTIONS")

        return Handler

    def seen(self, method: str, path: str) -> list[Request]:
        with self.cond:
            return [r for r in self.requests if r.method == method and r.path == path]

    def deliveries(self, topic: str, event_id: str) -> list[Request]:
        with self.cond:
            return [
                r
                for r in self.requests
                if r.path == f"/events/{topic}"
                and isinstance(r.body, dict)
                and r.body.get("id") == event_id
            ]

    def wait_event(self, topic: str, event_id: str, timeout: float = 30) -> Request:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.requests:
                    if r.path == f"/events/{topic}" and isinstance(r.body, dict):
                        if r.body.get("id") == event_id:
                            return r
                left = deadline - time.monotonic()
                if left <= 0:
                    paths = [f"{r.method} {r.path}" for r in self.requests]
                    raise AssertionError(f"event {event_id} never reached /events/{topic}: {paths}")
                self.cond.wait(min(left, 0.5))


# --- fixtures -----------------------------------------------------------------------------------


@dataclass
class Sidecar:
    app: App
    daprd: Daprd

    @functools.cached_property
    def http(self) -> httpx2.Client:
        """The sidecar's API, with the API token (its address is final once daprd is up)."""
        headers = {"dapr-api-token": API_TOKEN}
        return httpx2.Client(base_url=self.daprd.base, timeout=10, headers=headers)

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        r = self.http.post(
            f"/v1.0/publish/pubsub/{topic}",
            content=json.dumps(event).encode(),
            headers={"Content-Type": "application/cloudevents+json"},
        )
        assert r.status_code == 204, f"publish to {topic}: {r.status_code} {r.text}"

    def metadata(self) -> dict[str, Any]:
        r = self.http.get("/v1.0/metadata")
        r.raise_for_status()
        return r.json()


@dataclass
class Cluster:
    scheduler: Sidecar
    mcp: Sidecar


@pytest.fixture(scope="module")
def cluster(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    daprd_bin = daprd_binary()
    redis_host = redis_for_tests()
    rendered = helm.template()
    base = tmp_path_factory.mktemp("daprd")
    resources, config = local_dapr(rendered, base, redis_host, REDIS_DB, {SECRET: SECRETS})

    started: list[Sidecar] = []

    def start(app_id: str) -> Sidecar:
        app = App()
        log = base / f"daprd-{app_id}.log"
        # As the injector configures the sidecar from the chart's token Secrets.
        env = {"APP_API_TOKEN": APP_TOKEN, "DAPR_API_TOKEN": API_TOKEN}
        sidecar = Sidecar(
            app, Daprd(daprd_bin, app_id, app.port, resources, log, env=env, config=config)
        )
        started.append(sidecar)
        sidecar.daprd.start()
        return sidecar

    try:
        cluster = Cluster(scheduler=start("scheduler"), mcp=start("mcp-server"))
        for s in (cluster.scheduler, cluster.mcp):
            s.daprd.wait_healthy()
            wait_until(
                lambda s=s: (
                    set(TOPICS) <= {x["topic"] for x in s.metadata().get("subscriptions") or []}
                ),
                30,
                f"daprd {s.daprd.app_id} to subscribe to {TOPICS}",
                diagnose=lambda s=s: tail(s.daprd.log),
            )
        yield cluster
    finally:
        for s in started:
            s.daprd.close()
            if "http" in s.__dict__:
                s.http.close()
            s.app.stop()


def logs(cluster: Cluster) -> str:
    return "\n".join(
        f"--- {s.daprd.log}\n{tail(s.daprd.log, 40)}" for s in (cluster.scheduler, cluster.mcp)
    )


def cloud_event(event_type: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/deploy-test",
        "type": event_type,
        "datacontenttype": "application/json",
        "data": {"check": "round trip"},
    }


# --- tests --------------------------------------------------------------------------------------


def test_each_sidecar_loads_the_components_scoped_to_its_app(cluster: Cluster) -> None:
    want = {
        "scheduler": {
            "pubsub": "pubsub.redis",
            "statestore": "state.redis",
            "reminders-cron": "bindings.cron",
            "recurring-cron": "bindings.cron",
        },
        "mcp-server": {"pubsub": "pubsub.redis", "secretstore": "secretstores.local.file"},
    }
    for s in (cluster.scheduler, cluster.mcp):
        meta = s.metadata()
        assert meta["id"] == s.daprd.app_id
        got = {c["name"]: c["type"] for c in meta["components"]}
        assert got == want[s.daprd.app_id], logs(cluster)
        assert meta["appConnectionProperties"]["port"] == s.app.port


def test_events_published_by_one_app_reach_both(cluster: Cluster) -> None:
    """Each app reads through its own consumer group ({appID}): every app sees every event."""
    for publisher, topic in [(cluster.mcp, "tasks"), (cluster.scheduler, "notifications"),
                             (cluster.scheduler, "deadletter")]:  # fmt: skip
        event = cloud_event(f"com.todo.deploy.{topic}")
        publisher.publish(topic, event)
        for s in (cluster.scheduler, cluster.mcp):
            got = s.app.wait_event(topic, event["id"])
            assert got.body["type"] == event["type"]
            assert got.body["data"] == event["data"]
            assert got.body["pubsubname"] == "pubsub" and got.body["topic"] == topic
            # The sidecar authenticates itself to the app with the app token.
            assert got.headers.get("dapr-api-token") == APP_TOKEN


def test_the_sidecar_api_wants_the_api_token(cluster: Cluster) -> None:
    r = httpx2.get(f"{cluster.mcp.daprd.base}/v1.0/metadata", timeout=10)
    assert r.status_code == 401, r.text
    r = httpx2.post(
        f"{cluster.mcp.daprd.base}/v1.0/publish/pubsub/tasks",
        content=json.dumps(cloud_event("com.todo.deploy.refused")).encode(),
        headers={"Content-Type": "application/cloudevents+json"},
        timeout=10,
    )
    assert r.status_code == 401, r.text


def test_the_state_store_works_for_the_scheduler_only(cluster: Cluster) -> None:
    key = f"deploy-{uuid.uuid4()}"
    s = cluster.scheduler.http
    r = s.post("/v1.0/state/statestore", json=[{"key": key, "value": {"n": 1}}])
    assert r.status_code == 204, r.text
    r = s.get(f"/v1.0/state/statestore/{key}")
    assert r.status_code == 200 and r.json() == {"n": 1}, r.text
    assert r.headers.get("ETag"), "the state store gives ETags (first-write-wins)"
    # Scoped to the scheduler: the MCP server's sidecar has no such store.
    r = cluster.mcp.http.get(f"/v1.0/state/statestore/{key}")
    assert r.status_code >= 400, r.text
    assert r.json()["errorCode"] == "ERR_STATE_STORE_NOT_CONFIGURED", r.text


def test_the_cron_bindings_reach_the_scheduler_triggers_only(cluster: Cluster) -> None:
    for path in ("/triggers/reminders", "/triggers/recurring"):
        wait_until(
            lambda path=path: cluster.scheduler.app.seen("POST", path),
            30,
            f"a cron trigger on {path}",
            diagnose=lambda: logs(cluster),
        )
        trigger = cluster.scheduler.app.seen("POST", path)[0]
        assert trigger.headers.get("dapr-api-token") == APP_TOKEN
    assert not [r for r in cluster.mcp.app.requests if r.path.startswith("/triggers/")]


def test_secrets_are_read_as_one_secret_and_nothing_else(cluster: Cluster) -> None:
    s = cluster.mcp
    r = s.http.get(f"/v1.0/secrets/secretstore/{SECRET}")
    assert r.status_code == 200, r.text
    assert r.json() == SECRETS
    # The Configuration's secret scope denies every other key (a per-key lookup included).
    for other in ("jwt-secret", "someone-elses"):
        r = s.http.get(f"/v1.0/secrets/secretstore/{other}")
        assert r.status_code == 403, f"{other}: {r.status_code} {r.text}"
    # The scheduler reads no secret: its sidecar has no secret store at all.
    r = cluster.scheduler.http.get(f"/v1.0/secrets/secretstore/{SECRET}")
    assert r.status_code >= 400 and SECRETS["jwt-secret"] not in r.text, r.text


def test_the_configuration_is_in_force(cluster: Cluster) -> None:
    # Tracing at sampling rate 1: a published event carries a W3C traceparent.
    event = cloud_event("com.todo.deploy.traced")
    cluster.mcp.publish("tasks", event)
    got = cluster.scheduler.app.wait_event("tasks", event["id"])
    assert got.body.get("traceparent", "").startswith("00-"), got.body


def test_a_failed_delivery_is_retried_at_once_by_the_resiliency_policy(cluster: Cluster) -> None:
    """`event-delivery` retries inbound pub/sub deliveries with a short backoff; without it the
    event would wait for pubsub.redis's processingTimeout (60 s) to be redelivered."""
    event = cloud_event("com.todo.deploy.retried")
    cluster.scheduler.app.fail_once.add(event["id"])
    started = time.monotonic()
    cluster.mcp.publish("tasks", event)
    wait_until(
        lambda: len(cluster.scheduler.app.deliveries("tasks", event["id"])) >= 2,
        15,
        "the failed delivery to be retried",
        diagnose=lambda: logs(cluster),
    )
    assert time.monotonic() - started < 15
    # The other app took it at once, and nothing went to the dead-letter topic.
    assert len(cluster.mcp.app.deliveries("tasks", event["id"])) == 1
    for s in (cluster.scheduler, cluster.mcp):
        assert not s.app.deliveries("deadletter", event["id"])
