"""The chart's Dapr components, Resiliency and Configuration, as rendered, in a real daprd.

Two sidecars run as in the cluster: app-id `scheduler` and app-id `mcp-server`, each beside a
small Python app that asks for every topic, with the chart's app and API tokens, on the rendered
Redis (its container's command and arguments, with the password of the rendered Secret). The
components differ from the rendered ones only where a machine without a cluster needs it (see
`deploy_support.local_components`): a local file for the Kubernetes secret store, a local store
standing in for the Dapr operator that resolves the Redis password from the rendered Secret, the
test Redis's address, and cron schedules of a second.
"""

from __future__ import annotations

import base64
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

from deploy_support import (
    OPERATOR_STORE,
    REDIS,
    REPO,
    SECRET,
    Helm,
    RedisClient,
    RedisError,
    RedisServer,
    Rendered,
    container,
    daprd_binary,
    local_dapr,
    option,
    redis_bytes,
    rendered_redis,
)

sys.path.insert(0, str(REPO / "tests" / "dapr"))
from dapr_support import Daprd, tail, wait_until  # noqa: E402

# The first test also pays for starting both sidecars (and building daprd when not cached).
pytestmark = pytest.mark.timeout(300)

# Every app asks for every topic; the pub/sub component's subscriptionScopes decide what each
# sidecar subscribes to.
TOPICS = ["tasks", "notifications", "deadletter"]
SUBSCRIBED = {"mcp-server": {"tasks", "notifications"}, "scheduler": {"tasks"}}
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

    def try_publish(self, topic: str, event: dict[str, Any]) -> httpx2.Response:
        return self.http.post(
            f"/v1.0/publish/pubsub/{topic}",
            content=json.dumps(event).encode(),
            headers={"Content-Type": "application/cloudevents+json"},
        )

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        r = self.try_publish(topic, event)
        assert r.status_code == 204, f"publish to {topic}: {r.status_code} {r.text}"

    def metadata(self) -> dict[str, Any]:
        r = self.http.get("/v1.0/metadata")
        r.raise_for_status()
        return r.json()


@dataclass
class Cluster:
    scheduler: Sidecar
    mcp: Sidecar
    redis: RedisServer
    rendered: Rendered


@pytest.fixture(scope="module")
def cluster(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    daprd_bin = daprd_binary()
    rendered = helm.template()
    base = tmp_path_factory.mktemp("daprd")
    redis = rendered_redis(rendered, base / "redis")
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
        redis.start()
        # The components reach it only through the rendered password.
        with RedisClient(redis.host) as anonymous, pytest.raises(RedisError, match="NOAUTH"):
            anonymous.call("PING")
        resources, config = local_dapr(rendered, base / "dapr", redis.host, {SECRET: SECRETS})
        cluster = Cluster(
            scheduler=start("scheduler"), mcp=start("mcp-server"), redis=redis, rendered=rendered
        )
        for s in (cluster.scheduler, cluster.mcp):
            s.daprd.wait_healthy()
            want = SUBSCRIBED[s.daprd.app_id]
            wait_until(
                lambda s=s, want=want: want <= subscribed(redis, s.daprd.app_id),
                30,
                f"daprd {s.daprd.app_id} to subscribe to {want}",
                diagnose=lambda s=s: tail(s.daprd.log),
            )
        yield cluster
    finally:
        for s in started:
            s.daprd.close()
            if "http" in s.__dict__:
                s.http.close()
            s.app.stop()
        redis.stop()


def consumer_groups(redis: RedisServer, topic: str) -> set[str]:
    with redis.client() as r:
        try:
            groups = r.call("XINFO", "GROUPS", topic)
        except RedisError as e:  # no such stream yet
            assert "no such key" in str(e), e
            return set()
    return {dict(zip(g[::2], g[1::2]))[b"name"].decode() for g in groups}


def subscribed(redis: RedisServer, app_id: str) -> set[str]:
    """The topics an app's consumer group reads, as Redis sees them: a sidecar creates its group
    on a topic's stream when it subscribes."""
    return {topic for topic in TOPICS if app_id in consumer_groups(redis, topic)}


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
    # Both also load the operator's stand-in (see `deploy_support.local_components`).
    want = {
        "scheduler": {
            "pubsub": "pubsub.redis",
            "statestore": "state.redis",
            "reminders-cron": "bindings.cron",
            "recurring-cron": "bindings.cron",
            OPERATOR_STORE: "secretstores.local.file",
        },
        "mcp-server": {
            "pubsub": "pubsub.redis",
            "secretstore": "secretstores.local.file",
            OPERATOR_STORE: "secretstores.local.file",
        },
    }
    for s in (cluster.scheduler, cluster.mcp):
        meta = s.metadata()
        assert meta["id"] == s.daprd.app_id
        got = {c["name"]: c["type"] for c in meta["components"]}
        assert got == want[s.daprd.app_id], logs(cluster)
        assert meta["appConnectionProperties"]["port"] == s.app.port


def test_the_components_use_the_rendered_redis_password(cluster: Cluster) -> None:
    """The password of the rendered Secret is the one the rendered Redis requires and the one
    both components resolve: without it nothing below would have connected."""
    secret = cluster.rendered.get("Secret", REDIS)
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    assert password == cluster.redis.password and len(password) >= 32
    with RedisClient(cluster.redis.host) as r, pytest.raises(RedisError, match="WRONGPASS"):
        r.call("AUTH", "not-" + password)
    # Both sidecars' pub/sub reached Redis (their consumer groups), and the scheduler's store.
    assert subscribed(cluster.redis, "mcp-server") == SUBSCRIBED["mcp-server"]
    assert subscribed(cluster.redis, "scheduler") == SUBSCRIBED["scheduler"]
    key = f"deploy-{uuid.uuid4()}"
    r = cluster.scheduler.http.post("/v1.0/state/statestore", json=[{"key": key, "value": 1}])
    assert r.status_code == 204, r.text
    with cluster.redis.client() as redis:
        assert redis.call("EXISTS", f"scheduler||{key}") == 1


def test_events_reach_the_apps_subscribed_to_their_topic(cluster: Cluster) -> None:
    """Each app reads through its own consumer group ({appID}): both see every task event; only
    todo-mcp subscribes to notifications (subscriptionScopes), and nobody to deadletter, though
    both apps ask for every topic."""
    for publisher, topic in [(cluster.mcp, "tasks"), (cluster.scheduler, "tasks"),
                             (cluster.scheduler, "notifications")]:  # fmt: skip
        event = cloud_event(f"com.todo.deploy.{topic}")
        publisher.publish(topic, event)
        for s in (cluster.scheduler, cluster.mcp):
            if topic not in SUBSCRIBED[s.daprd.app_id]:
                continue
            got = s.app.wait_event(topic, event["id"])
            assert got.body["type"] == event["type"]
            assert got.body["data"] == event["data"]
            assert got.body["pubsubname"] == "pubsub" and got.body["topic"] == topic
            # The sidecar authenticates itself to the app with the app token.
            assert got.headers.get("dapr-api-token") == APP_TOKEN
    # Dead letters are kept in their stream, for an operator to read; no app gets them.
    event = cloud_event("com.todo.deploy.deadletter")
    cluster.mcp.publish("deadletter", event)
    with cluster.redis.client() as r:
        entries = r.call("XRANGE", "deadletter", "-", "+")
    stored = [json.loads(dict(zip(f[::2], f[1::2]))[b"data"]) for _, f in entries]
    assert event["id"] in {e["id"] for e in stored}
    time.sleep(1)  # what daprd would deliver it would deliver by now
    assert not cluster.scheduler.app.seen("POST", "/events/notifications")
    for s in (cluster.scheduler, cluster.mcp):
        assert not s.app.seen("POST", "/events/deadletter"), s.daprd.app_id
    assert consumer_groups(cluster.redis, "deadletter") == set()


def test_publishing_scopes_are_enforced_by_daprd(cluster: Cluster) -> None:
    """todo-mcp may publish `tasks` and `deadletter`, the scheduler `notifications` as well;
    daprd refuses anything else before it reaches Redis."""
    allowed = {
        "mcp-server": {"tasks", "deadletter"},
        "scheduler": {"tasks", "notifications", "deadletter"},
    }
    for s in (cluster.scheduler, cluster.mcp):
        for topic in [*TOPICS, "other"]:
            event = cloud_event(f"com.todo.deploy.scope.{topic}")
            before = stream_length(cluster.redis, topic)
            r = s.try_publish(topic, event)
            where = f"{s.daprd.app_id} publishing {topic}"
            if topic in allowed[s.daprd.app_id]:
                assert r.status_code == 204, f"{where}: {r.status_code} {r.text}"
                assert stream_length(cluster.redis, topic) == before + 1, where
            else:
                assert r.status_code == 403, f"{where}: {r.status_code} {r.text}"
                assert r.json()["errorCode"] == "ERR_PUBSUB_FORBIDDEN", f"{where}: {r.text}"
                assert stream_length(cluster.redis, topic) == before, where
    # The notification the MCP server tried to forge never reached it (nor anyone).
    forged = cloud_event("com.todo.reminder.triggered")
    assert cluster.mcp.try_publish("notifications", forged).status_code == 403
    time.sleep(1)
    assert not cluster.mcp.app.deliveries("notifications", forged["id"])


def stream_length(redis: RedisServer, topic: str) -> int:
    with redis.client() as r:
        return r.call("XLEN", topic)


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


def test_redis_holds_every_stream_at_its_longest(cluster: Cluster) -> None:
    """The supported lag costs memory: every topic's stream at maxLenApprox events must fit in
    Redis's maxmemory with room left for the scheduler's state. Measured here: events of 2,000
    bytes as Redis stores them (a task with a long description; a real task.created with a short
    title is about 800), published through the rendered pub/sub. (Just above 2,040 bytes an
    event no longer shares a 4 KB stream node and takes 2.8 KB instead of 2.2.)"""
    pubsub = cluster.rendered.get("Component", "pubsub")
    meta = {m["name"]: m.get("value") for m in pubsub["spec"]["metadata"]}
    max_len = int(meta["maxLenApprox"])
    topics = {
        topic
        for scope in meta["publishingScopes"].split(";")
        for topic in scope.split("=", 1)[1].split(",")
    }
    redis = container(cluster.rendered.get("StatefulSet", REDIS))
    maxmemory = redis_bytes(option(redis, "--maxmemory"))

    count = 1000
    template = cloud_event("com.todo.task.updated")
    template["data"] = {"task": {"title": "A task", "description": ""}, "changes": {}}
    with cluster.redis.client() as r:
        before = (r.call("XLEN", "deadletter"), memory_usage(r, "deadletter"))
    entries = []
    for i in range(count):
        event = dict(template, id=str(uuid.uuid4()))
        event["data"] = {"task": {"title": f"Task {i}", "description": "d" * 1537}, "changes": {}}
        entries.append(
            {"entryId": str(i), "event": event, "contentType": "application/cloudevents+json"}
        )
    for chunk in range(0, count, 250):
        r = cluster.scheduler.http.post(
            "/v1.0-alpha1/publish/bulk/pubsub/deadletter", json=entries[chunk : chunk + 250]
        )
        assert r.status_code in (200, 204), r.text
        assert not (r.json().get("failedEntries") if r.content else None), r.text
    with cluster.redis.client() as r:
        length = r.call("XLEN", "deadletter")
        per_event = (memory_usage(r, "deadletter") - before[1]) / (length - before[0])
        (_, fields), *_ = r.call("XREVRANGE", "deadletter", "+", "-", "COUNT", 1)
        stored = len(dict(zip(fields[::2], fields[1::2]))[b"data"])
    assert length - before[0] == count
    assert 1950 <= stored <= 2000, f"the test's event is {stored} bytes, not about 2 KB"
    streams = len(topics) * max_len * per_event
    figures = (
        f"{len(topics)} topics x {max_len} events x {per_event:.0f} bytes (an event of {stored}) "
        f"= {streams / 2**20:.0f} MiB of maxmemory {maxmemory / 2**20:.0f} MiB"
    )
    print(figures)
    assert topics == {"tasks", "notifications", "deadletter"}
    # At least 35 % (360 MiB at the defaults) stays for the scheduler's state.
    assert streams <= 0.65 * maxmemory, figures


def memory_usage(r: RedisClient, key: str) -> int:
    return r.call("MEMORY", "USAGE", key, "SAMPLES", "0") or 0
