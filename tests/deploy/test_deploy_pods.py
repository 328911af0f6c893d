"""The two app pods as rendered, without a cluster: `todo-mcp` and `todo-scheduler` run with the
environment of their rendered Deployments (Secrets resolved from the rendered Secrets, as the
kubelet does) beside a daprd configured as the injector would (app id, app port, the token
Secrets, the Dapr Configuration) with the rendered components (see
`deploy_support.local_components`).

What differs from a cluster: listeners on loopback ports of their own instead of the pod's
fixed ports, and the database is a SQLite file instead of the in-chart PostgreSQL (the rendered
`database-url` names a host that only exists in the cluster). Redis is the rendered one, with the
rendered password (`deploy_support.rendered_redis`).

Needs the binaries: TODO_MCP_BIN and TODO_SCHEDULER_BIN, else target/debug/; skipped when they
are not built.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from deploy_support import (
    MCP,
    REPO,
    SCHEDULER,
    SECRET,
    Helm,
    Rendered,
    container,
    daprd_binary,
    local_dapr,
    pod_annotations,
    rendered_redis,
    rendered_secrets,
    resolve_env,
)

sys.path.insert(0, str(REPO / "tests" / "dapr"))
from dapr_support import Daprd, Proc, clean_env, free_port, mint_token, tail, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(300)

SERVICE_PORT = 8080


def binary(env: str, name: str) -> str:
    path = os.environ.get(env) or str(REPO / "target" / "debug" / name)
    if not os.access(path, os.X_OK):
        if os.environ.get(env):
            pytest.fail(f"{env}={path} is not an executable")
        pytest.skip(f"{name} is not built (cargo build -p ...), or set {env}")
    return path


@dataclass
class Pod:
    """An app and its sidecar."""

    app: Proc
    daprd: Daprd
    app_url: str  # where probes reach the app
    env: dict[str, str]

    def logs(self) -> str:
        return "\n".join(f"--- {log}\n{tail(log)}" for log in (self.app.log, self.daprd.log))


@dataclass
class Pods:
    mcp: Pod
    scheduler: Pod
    secrets: dict[str, str]
    api_token: str


def start_pod(
    name: str,
    rendered: Rendered,
    deployment_name: str,
    secrets: dict[str, dict[str, str]],
    resources: Path,
    config: Path,
    base: Path,
    argv: list[str],
    listen: dict[str, str],
) -> Pod:
    """Starts daprd as the injector would configure it from the pod annotations, then the app
    with the rendered environment; `listen` maps the env variables of the app's listeners to the
    rendered port they stand for."""
    deployment = rendered.get("Deployment", deployment_name)
    annotations = pod_annotations(deployment)
    rendered_env = resolve_env(container(deployment), secrets)
    for var, port in listen.items():
        assert rendered_env[var].endswith(f":{port}"), (var, rendered_env[var])
    ports = {var: free_port() for var in listen}
    app_port_var = next(v for v, p in listen.items() if p == annotations["dapr.io/app-port"])
    # The injector hands the sidecar the token Secrets named in the annotations.
    sidecar_env = {
        "APP_API_TOKEN": secrets[annotations["dapr.io/app-token-secret"]]["token"],
        "DAPR_API_TOKEN": secrets[annotations["dapr.io/api-token-secret"]]["token"],
    }
    daprd = Daprd(
        daprd_binary(),
        annotations["dapr.io/app-id"],
        ports[app_port_var],
        resources,
        base / f"daprd-{name}.log",
        env=sidecar_env,
        config=config,
    )
    overrides = {}
    for var, port in ports.items():
        # Same interface as rendered (0.0.0.0 or 127.0.0.1), a port of our own.
        host = rendered_env[var].rsplit(":", 1)[0]
        overrides[var] = f"{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    argv = argv + container(deployment).get("args", [])
    app = Proc(name, argv, {}, base / f"{name}.log")
    probe_var = next(v for v, p in listen.items() if "0.0.0.0" in rendered_env[v])
    pod = Pod(app, daprd, f"http://127.0.0.1:{ports[probe_var]}", {})
    try:
        daprd.start()
        # What the injector adds to every app container (known once daprd has its ports).
        overrides |= {
            "DAPR_HTTP_PORT": str(daprd.http_port),
            "DAPR_GRPC_PORT": str(daprd.grpc_port),
        }
        pod.env = resolve_env(container(deployment), secrets, overrides)
        app.env = clean_env(**pod.env)
        app.start()
        wait_until(
            lambda: httpx2.get(f"{pod.app_url}/healthz", timeout=2).status_code == 200,
            90,
            f"{name} /healthz",
            diagnose=pod.logs,
        )
        daprd.wait_healthy()
    except BaseException:
        app.stop()
        daprd.close()
        raise
    return pod


@pytest.fixture(scope="module")
def pods(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pods]:
    mcp_bin = binary("TODO_MCP_BIN", "todo-mcp")
    scheduler_bin = binary("TODO_SCHEDULER_BIN", "todo-scheduler")
    base = tmp_path_factory.mktemp("pods")
    rendered = helm.template()
    secrets = rendered_secrets(rendered)
    secrets[SECRET]["database-url"] = f"sqlite://{base}/todo.db?mode=rwc"
    app_secret = {k: secrets[SECRET][k] for k in ("jwt-secret", "database-url")}
    redis = rendered_redis(rendered, base / "redis")
    started: list[Pod] = []
    try:
        redis.start()
        resources, config = local_dapr(rendered, base / "dapr", redis.host, {SECRET: app_secret})
        for name, deployment, argv, listen in [
            (
                "mcp-server",
                MCP,
                [mcp_bin],
                {"TODO_LISTEN": "8080", "TODO_APP_LISTEN": "8081", "TODO_METRICS_LISTEN": "9464"},
            ),
            (
                "scheduler",
                SCHEDULER,
                [scheduler_bin],
                {"TODO_SCHEDULER_LISTEN": "8082", "TODO_METRICS_LISTEN": "9464"},
            ),
        ]:
            pod = start_pod(
                name, rendered, deployment, secrets, resources, config, base, argv, listen
            )
            started.append(pod)
        token_secret = pod_annotations(rendered.get("Deployment", MCP))["dapr.io/api-token-secret"]
        yield Pods(started[0], started[1], app_secret, secrets[token_secret]["token"])
    finally:
        for pod in reversed(started):
            pod.app.stop()
            pod.daprd.close()
        redis.stop()


def mcp_call(
    pod: Pod, token: str | None, host: str, tool: str, args: dict[str, Any]
) -> httpx2.Response:
    """One tools/call with the given Host header and bearer token (None: no header)."""
    headers = {
        "Host": host,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": args},
    }
    return httpx2.post(f"{pod.app_url}/mcp", content=json.dumps(body), headers=headers, timeout=30)


def answer(r: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a tools/call, from JSON or server-sent events."""
    if r.headers.get("content-type", "").startswith("application/json"):
        return r.json()
    data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
    return [json.loads(d) for d in data if d][-1]


def test_the_mcp_server_is_ready_and_its_sidecar_subscribed(pods: Pods) -> None:
    ready = httpx2.get(f"{pods.mcp.app_url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["database"] == "ok", ready.text
    # The sidecar read the subscriptions through the app port, presenting the app token.
    meta = pods.mcp.daprd.http.get("/v1.0/metadata", headers={"dapr-api-token": pods.api_token})
    assert meta.status_code == 200, meta.text
    topics = {s["topic"] for s in meta.json().get("subscriptions") or []}
    assert {"tasks", "notifications"} <= topics, pods.mcp.logs()


def test_both_pods_serve_prometheus_metrics_where_the_annotations_say(pods: Pods) -> None:
    for pod, metric in ((pods.mcp, "todo_outbox_pending"), (pods.scheduler, "todo_reminders_armed_total")):
        port = pod.env["TODO_METRICS_LISTEN"].rsplit(":", 1)[1]
        r = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain"), r.headers
        assert f"\n{metric} " in f"\n{r.text}", r.text[:1000]


def test_every_allowed_host_is_served_and_others_refused(pods: Pods) -> None:
    token = mint_token(f"deploy-{uuid.uuid4()}", pods.secrets["jwt-secret"])
    hosts = pods.mcp.env["TODO_ALLOWED_HOSTS"].split(",")
    assert hosts[0] == MCP
    for name in hosts:
        for host in (
            (f"[{name}]:{SERVICE_PORT}",) if ":" in name else (name, f"{name}:{SERVICE_PORT}")
        ):
            r = mcp_call(pods.mcp, token, host, "list_tasks", {})
            assert r.status_code == 200, f"Host {host}: {r.status_code} {r.text}"
    for host in ("evil.example.com", f"evil.example.com:{SERVICE_PORT}"):
        r = mcp_call(pods.mcp, token, host, "list_tasks", {})
        assert r.status_code == 403, f"Host {host}: {r.status_code} {r.text}"


def test_tokens_signed_with_the_rendered_jwt_secret_are_accepted(pods: Pods) -> None:
    host = f"{MCP}:{SERVICE_PORT}"
    assert mcp_call(pods.mcp, None, host, "list_tasks", {}).status_code == 401
    wrong = mint_token("someone", "x" * 48)
    assert mcp_call(pods.mcp, wrong, host, "list_tasks", {}).status_code == 401
    token = mint_token(f"deploy-{uuid.uuid4()}", pods.secrets["jwt-secret"])
    r = mcp_call(pods.mcp, token, host, "add_task", {"title": "Deployed"})
    assert r.status_code == 200, r.text
    result = answer(r)["result"]
    assert not result.get("isError"), result
    assert result["structuredContent"]["task"]["title"] == "Deployed"


def test_task_events_leave_through_the_rendered_pubsub(pods: Pods) -> None:
    token = mint_token(f"deploy-{uuid.uuid4()}", pods.secrets["jwt-secret"])
    r = mcp_call(pods.mcp, token, f"{MCP}:{SERVICE_PORT}", "add_task", {"title": "Published"})
    assert r.status_code == 200, r.text
    # The relay published every outbox event through the sidecar (with the API token).
    wait_until(
        lambda: (
            httpx2.get(f"{pods.mcp.app_url}/readyz", timeout=5).json()["outbox"]["pending"] == 0
        ),
        30,
        "the outbox to drain through the sidecar",
        diagnose=pods.mcp.logs,
    )


def test_the_scheduler_answers_probes_and_only_its_sidecar_otherwise(pods: Pods) -> None:
    # The kubelet's probes carry no token.
    for path in ("/healthz", "/readyz"):
        r = httpx2.get(f"{pods.scheduler.app_url}{path}", timeout=10)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    # Everything else is for the sidecar alone.
    assert httpx2.get(f"{pods.scheduler.app_url}/dapr/subscribe", timeout=10).status_code == 401
    meta = pods.scheduler.daprd.http.get(
        "/v1.0/metadata", headers={"dapr-api-token": pods.api_token}
    ).json()
    assert "tasks" in {s["topic"] for s in meta.get("subscriptions") or []}, pods.scheduler.logs()
    assert {c["name"] for c in meta["components"]} >= {
        "statestore",
        "reminders-cron",
        "recurring-cron",
    }
