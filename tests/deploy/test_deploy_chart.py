"""charts/todo as shipped: helm lint, the rendered objects against the Kubernetes 1.33 schemas and
Dapr's CRDs, and what the objects must say (Dapr wiring, secrets, security defaults, probes)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_support import (
    CHART,
    COMPONENT_SCHEMA,
    DAPR_KINDS,
    DAPR_SCHEMAS,
    K8S_VERSION,
    MCP,
    NAMESPACE,
    REDIS,
    RELEASE,
    REPO,
    SCHEDULER,
    SECRET,
    VALUE_SETS,
    Helm,
    Rendered,
    container,
    env_of,
    k8s_bytes,
    option,
    pod_annotations,
    redis_bytes,
    schema_errors,
    secret_data,
    validate_k8s,
)

pytestmark = pytest.mark.timeout(120)

POSTGRESQL = f"{RELEASE}-postgresql"
EXPECTED = {
    "ServiceAccount": {RELEASE, f"{RELEASE}-scheduler"},
    "Secret": {SECRET, REDIS, f"{RELEASE}-dapr-app-token", f"{RELEASE}-dapr-api-token"},
    "Role": {f"{RELEASE}-secret-reader"},
    "RoleBinding": {f"{RELEASE}-secret-reader"},
    "Service": {MCP, REDIS, POSTGRESQL},
    "Deployment": {MCP, SCHEDULER},
    "StatefulSet": {REDIS, POSTGRESQL},
    "NetworkPolicy": {MCP, SCHEDULER, REDIS, POSTGRESQL},
    "Component": {"pubsub", "statestore", "secretstore", "reminders-cron", "recurring-cron"},
    "Configuration": {f"{RELEASE}-dapr"},
    "Resiliency": {"event-delivery"},
    "Pod": {f"{RELEASE}-test-mcp-server"},
}


# --- helm itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(helm: Helm, name: str) -> None:
    out = helm.run(
        "lint", "--strict", "--kube-version", K8S_VERSION, str(CHART),
        *helm.value_args(VALUE_SETS[name]),
    )  # fmt: skip
    assert "0 chart(s) failed" in out.stdout, out.stdout


def test_helm_lint_strict_with_an_identity_provider(helm: Helm) -> None:
    sets = {
        "mcpServer.auth.issuer": "https://auth.example.com",
        "mcpServer.auth.introspection.clientId": "todo-mcp",
        "secrets.introspectionClientSecret": "s3cret",
        "mcpServer.ingress.enabled": True,
        "mcpServer.ingress.host": "todo.example.com",
    }
    out = helm.run(
        "lint", "--strict", "--kube-version", K8S_VERSION, str(CHART), *helm.value_args(sets=sets)
    )
    assert "0 chart(s) failed" in out.stdout, out.stdout


def test_both_value_sets_render_the_whole_stack(rendered: dict[str, Rendered]) -> None:
    for name, r in rendered.items():
        kinds = {k: {o["metadata"]["name"] for o in r.of_kind(k)} for k in EXPECTED}
        assert kinds == EXPECTED, f"{name}: {r.names()}"
        assert {o["kind"] for o in r.objects} == set(EXPECTED), name


def render_notes(helm: Helm, tmp_path: Path, sets: dict[str, Any] | None = None) -> str:
    # `helm template` leaves NOTES.txt out and `helm install --dry-run` wants a cluster: render a
    # copy of the chart in which the notes are a ConfigMap.
    chart = tmp_path / "todo"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_for_test.tpl").write_text(
        '{{- define "test.notes" }}' + notes + "{{- end }}"
    )
    (chart / "templates" / "notes-for-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ include "test.notes" . | quote }}\n'
    )
    out = helm.run(
        "template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", K8S_VERSION,
        "--show-only", "templates/notes-for-test.yaml", *helm.value_args(sets=sets),
    )  # fmt: skip
    return yaml.safe_load(out.stdout)["data"]["notes"]


def test_notes_explain_how_to_reach_the_endpoint(helm: Helm, tmp_path: Path) -> None:
    text = render_notes(helm, tmp_path)
    assert f"port-forward svc/{MCP} 8080:8080" in text, text
    assert f"http://{MCP}.{NAMESPACE}.svc.cluster.local:8080/mcp" in text, text
    assert f"get secret {SECRET} -o jsonpath='{{.data.jwt-secret}}'" in text, text
    assert "Authorization: Bearer $TOKEN" in text, text
    assert f"helm test {RELEASE}" in text, text
    assert f'Redis requires a generated password (Secret "{REDIS}"' in text, text
    assert "/mcp from anywhere (narrow it with networkPolicy.mcpServerFrom)" in text, text
    assert "The JWT secret and the PostgreSQL password were generated" in text, text
    assert "oauth-protected-resource" not in text, text


def test_notes_with_an_identity_provider_say_how_clients_sign_in(
    helm: Helm, tmp_path: Path
) -> None:
    issuer = "https://auth.example.com/realms/todo"
    text = render_notes(
        helm,
        tmp_path,
        {
            "mcpServer.auth.issuer": issuer,
            "mcpServer.ingress.enabled": True,
            "mcpServer.ingress.host": "todo.example.com",
            "mcpServer.ingress.tlsSecretName": "todo-tls",
        },
    )
    assert issuer in text, text
    assert "https://todo.example.com/.well-known/oauth-protected-resource/mcp" in text, text
    assert "claude mcp add --transport http todo https://todo.example.com/mcp\n" in text, text
    assert "tasks:read" in text and "tasks:write" in text, text
    # No recipe for HS256 tokens: there is no JWT secret.
    assert "jwt-secret" not in text and "HS256" not in text, text
    assert "The PostgreSQL password was generated" in text, text
    assert f"port-forward svc/{MCP} 8080:8080" in text, text


# --- schemas ----------------------------------------------------------------------------------


def test_kubernetes_objects_validate_strictly_against_kubernetes_1_33(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    r = rendered[value_set]
    core = [o for o in r.objects if o["kind"] not in DAPR_KINDS]
    assert len(core) >= 12, r.names()
    errors = [e for e in map(validate_k8s, core) if e]
    assert not errors, "\n".join(errors)
    # Only the Dapr resources are left to the schemas below.
    others = {o["apiVersion"] for o in r.objects if o["kind"] in DAPR_KINDS}
    assert others == {"dapr.io/v1alpha1"}, others


def test_the_kubernetes_validator_does_reject_a_broken_object(
    rendered: dict[str, Rendered],
) -> None:
    # Guards the test above: strict mode must catch an unknown field and a wrong type.
    deployment = json.loads(json.dumps(rendered["default"].get("Deployment", MCP)))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    assert validate_k8s(deployment), "an unknown field passed"
    deployment = json.loads(json.dumps(rendered["default"].get("Deployment", MCP)))
    deployment["spec"]["replicas"] = "two"
    assert validate_k8s(deployment), "a string replica count passed"


def test_dapr_components_validate_against_the_component_crd_schema(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    components = rendered[value_set].of_kind("Component")
    errors = [e for c in components for e in schema_errors(COMPONENT_SCHEMA, c)]
    assert not errors, "\n".join(errors)
    for c in components:
        names = [m["name"] for m in c["spec"]["metadata"]]
        assert len(names) == len(set(names)), f"{c['metadata']['name']}: duplicate metadata {names}"


def test_other_dapr_resources_validate_against_their_crd_schemas(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    others = [o for o in rendered[value_set].objects if o["kind"] in DAPR_KINDS - {"Component"}]
    assert {o["kind"] for o in others} == {"Configuration", "Resiliency"}
    errors = [e for o in others for e in schema_errors(DAPR_SCHEMAS[o["kind"]], o)]
    assert not errors, "\n".join(errors)


def test_the_component_schema_rejects_what_dapr_would() -> None:
    good = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "pubsub"},
        "spec": {
            "type": "pubsub.redis",
            "version": "v1",
            "metadata": [{"name": "a", "value": "b"}],
        },
    }
    assert not schema_errors(COMPONENT_SCHEMA, good)
    bad_variants = [
        ("spec", {"type": "pubsub.redis", "version": "v1"}),  # metadata is required
        ("spec", {"type": "redis", "version": "v1", "metadata": []}),  # no component kind
        ("spec", {"type": "pubsub.redis", "version": "1", "metadata": []}),
        ("spec", {"type": "pubsub.redis", "version": "v1", "metadata": [{"value": "x"}]}),
        ("spec", {"type": "pubsub.redis", "version": "v1", "metadata": [], "extra": 1}),
        ("scopes", "mcp-server"),
        ("auth", {}),
    ]
    for key, value in bad_variants:
        assert schema_errors(COMPONENT_SCHEMA, {**good, key: value}), f"{key}={value!r} passed"


# --- Dapr -------------------------------------------------------------------------------------


def test_dapr_resources_match_the_self_hosted_ones(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    """Every resource of components/*.yaml is in the chart under the same kind and name, with
    the same scopes and settings; only the Redis address and the secret store's backend
    differ."""
    chart = {
        (o["kind"], o["metadata"]["name"]): o
        for o in rendered[value_set].objects
        if o["kind"] in DAPR_KINDS - {"Configuration"}
    }
    local = {}
    for path in sorted((REPO / "components").glob("*.yaml")):
        o = yaml.safe_load(path.read_text())
        local[(o["kind"], o["metadata"]["name"])] = o
    assert set(chart) == set(local)
    for key, want in local.items():
        got = chart[key]
        assert got["scopes"] == want["scopes"], key
        if key[0] != "Component":
            assert got["spec"] == want["spec"], key
            continue
        assert got["spec"]["version"] == want["spec"]["version"], key
        if key[1] == "secretstore":
            assert want["spec"]["type"] == "secretstores.local.file"
            assert got["spec"]["type"] == "secretstores.kubernetes"
            continue
        assert got["spec"]["type"] == want["spec"]["type"], key
        meta_got = {
            m["name"]: m.get("value", m.get("secretKeyRef")) for m in got["spec"]["metadata"]
        }
        meta_want = {m["name"]: m.get("value") for m in want["spec"]["metadata"]}
        if "redisHost" in meta_want:
            redis = f"{REDIS}.{NAMESPACE}.svc.cluster.local:6379"
            assert meta_got.pop("redisHost") == redis
            meta_want.pop("redisHost")
            # The local Redis of `dapr run` has no password.
            assert meta_got.pop("redisPassword") == {"name": REDIS, "key": "redis-password"}
        assert meta_got == meta_want, key


def test_both_apps_get_dapr_sidecars(rendered: dict[str, Rendered], value_set: str) -> None:
    r = rendered[value_set]
    for name, app_id, port in [(MCP, "mcp-server", "8081"), (SCHEDULER, "scheduler", "8082")]:
        a = pod_annotations(r.get("Deployment", name))
        assert a["dapr.io/enabled"] == "true"
        assert a["dapr.io/app-id"] == app_id
        assert a["dapr.io/app-port"] == port
        assert a["dapr.io/app-protocol"] == "http"
        assert a["dapr.io/enable-api-logging"] == "true"
        assert a["dapr.io/config"] == f"{RELEASE}-dapr"
        assert a["dapr.io/app-token-secret"] == f"{RELEASE}-dapr-app-token"
        assert a["dapr.io/api-token-secret"] == f"{RELEASE}-dapr-api-token"
        assert a["dapr.io/disable-builtin-k8s-secret-store"] == "true"
        # The injector hands the tokens to the sidecar only; the app reads the same Secrets.
        env = env_of(container(r.get("Deployment", name)))
        assert env["APP_API_TOKEN"] == {
            "secretKeyRef": {"name": f"{RELEASE}-dapr-app-token", "key": "token"}
        }
        assert env["DAPR_API_TOKEN"] == {
            "secretKeyRef": {"name": f"{RELEASE}-dapr-api-token", "key": "token"}
        }
        assert "TODO_INSECURE_NO_APP_TOKEN" not in env
    for token in ("app", "api"):
        data = secret_data(r.get("Secret", f"{RELEASE}-dapr-{token}-token"))
        assert set(data) == {"token"} and len(data["token"]) >= 32
    # Redis and PostgreSQL run without sidecars.
    assert "dapr.io/enabled" not in pod_annotations(r.get("StatefulSet", REDIS))
    assert "dapr.io/enabled" not in pod_annotations(r.get("StatefulSet", POSTGRESQL))


def test_app_ids_are_the_ones_the_components_are_scoped_to(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    app_ids = {pod_annotations(d).get("dapr.io/app-id") for d in r.of_kind("Deployment")} - {None}
    assert app_ids == {"mcp-server", "scheduler"}
    scopes = {c["metadata"]["name"]: set(c["scopes"]) for c in r.of_kind("Component")}
    assert scopes == {
        "pubsub": app_ids,
        "secretstore": {"mcp-server"},
        "statestore": {"scheduler"},
        "reminders-cron": {"scheduler"},
        "recurring-cron": {"scheduler"},
    }


def test_cron_bindings_route_to_the_scheduler_triggers(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    for name, route in [
        ("reminders-cron", "/triggers/reminders"),
        ("recurring-cron", "/triggers/recurring"),
    ]:
        meta = {m["name"]: m["value"] for m in r.get("Component", name)["spec"]["metadata"]}
        assert meta == {"schedule": "@every 1m", "route": route, "direction": "input"}


def test_dapr_configuration_traces_and_scopes_secrets(rendered: dict[str, Rendered]) -> None:
    spec = rendered["default"].get("Configuration", f"{RELEASE}-dapr")["spec"]
    assert spec["tracing"]["samplingRate"] == "1"
    assert spec["secrets"]["scopes"] == [
        {"storeName": "secretstore", "defaultAccess": "deny", "allowedSecrets": [SECRET]}
    ]


# --- the MCP server ---------------------------------------------------------------------------


def test_mcp_server_environment(rendered: dict[str, Rendered], value_set: str) -> None:
    r = rendered[value_set]
    c = container(r.get("Deployment", MCP))
    env = env_of(c)
    assert c["args"] == ["--transport", "http"]
    assert env["TODO_LISTEN"] == "0.0.0.0:8080"
    assert env["TODO_APP_LISTEN"] == "127.0.0.1:8081"
    assert env["TODO_EVENTS"] == "dapr"
    assert env["TODO_SECRET_STORE"] == "secretstore"
    assert env["TODO_SECRET_NAME"] == SECRET
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": SECRET, "key": "database-url"}}
    assert env["TODO_JWT_SECRET"] == {"secretKeyRef": {"name": SECRET, "key": "jwt-secret"}}
    assert env["TODO_DB_MAX_CONNECTIONS"] == "16"
    # Each user's limits, as the server's own defaults; the share in flight is left to the server
    # (half the pool, at most the pod's cores).
    assert {k: env[k] for k in env if k.endswith(("_PER_USER", "_MINUTES")) or k.startswith("TODO_RATE")} == {
        "TODO_TASKS_PER_USER": "10000",
        "TODO_SERIES_PER_USER": "1000",
        "TODO_REMINDERS_PER_USER": "10000",
        "TODO_MIN_RECURRENCE_MINUTES": "60",
        "TODO_RATE_LIMIT_PER_SECOND": "100",
        "TODO_RATE_LIMIT_BURST": "200",
    }
    assert "RUST_LOG" in env
    # The public listener; the app port is the sidecar's alone, the metrics port Prometheus's.
    assert c["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9464, "protocol": "TCP"},
    ]
    assert env["TODO_METRICS_LISTEN"] == "0.0.0.0:9464"


def test_allowed_hosts_cover_the_service_names_and_port_forwarding(
    rendered: dict[str, Rendered],
) -> None:
    env = env_of(container(rendered["default"].get("Deployment", MCP)))
    hosts = env["TODO_ALLOWED_HOSTS"].split(",")
    assert hosts == [
        MCP,
        f"{MCP}.{NAMESPACE}",
        f"{MCP}.{NAMESPACE}.svc",
        f"{MCP}.{NAMESPACE}.svc.cluster.local",
        "localhost",
        "127.0.0.1",
        "::1",
    ]
    assert "TODO_ALLOWED_ORIGINS" not in env  # the server's default (localhost) stays


def test_service_exposes_the_mcp_port(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    svc = r.get("Service", MCP)
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    labels = r.get("Deployment", MCP)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    # The selector picks the MCP server alone, not the scheduler.
    other = r.get("Deployment", SCHEDULER)["spec"]["template"]["metadata"]["labels"]
    assert not svc["spec"]["selector"].items() <= other.items()


def test_probes(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    for name in (MCP, SCHEDULER):
        c = container(r.get("Deployment", name))
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
    # The scheduler's probes reach its Dapr app port, so it listens on the pod's address.
    sched = container(r.get("Deployment", SCHEDULER))
    assert env_of(sched)["TODO_SCHEDULER_LISTEN"] == "0.0.0.0:8082"
    assert sched["ports"][0]["containerPort"] == 8082


def test_helm_test_hook_calls_the_health_route_through_the_service(
    rendered: dict[str, Rendered],
) -> None:
    pod = rendered["default"].get("Pod", f"{RELEASE}-test-mcp-server")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = " ".join(pod["spec"]["containers"][0]["args"])
    assert f"http://{MCP}:8080/healthz" in script
    assert f"http://{MCP}:8080/readyz" in script
    assert 'test "$code" = 401' in script
    assert pod["spec"]["restartPolicy"] == "Never"


# --- secrets ----------------------------------------------------------------------------------


def test_the_app_secret_points_at_the_in_chart_postgresql(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    data = secret_data(r.get("Secret", SECRET))
    assert set(data) == {"jwt-secret", "database-url", "postgres-password"}
    assert len(data["jwt-secret"]) >= 32
    assert data["database-url"] == (
        f"postgres://todo:{data['postgres-password']}@{RELEASE}-postgresql:5432/todo"
    )
    pg = container(r.get("StatefulSet", POSTGRESQL))
    assert env_of(pg)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": SECRET, "key": "postgres-password"}
    }


def test_the_secret_store_may_read_the_app_secret_and_nothing_else_and_not_for_the_scheduler(
    rendered: dict[str, Rendered],
) -> None:
    r = rendered["default"]
    role = r.get("Role", f"{RELEASE}-secret-reader")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET], "verbs": ["get"]}
    ]
    binding = r.get("RoleBinding", f"{RELEASE}-secret-reader")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
    ]
    account = {
        name: r.get("Deployment", name)["spec"]["template"]["spec"]["serviceAccountName"]
        for name in (MCP, SCHEDULER)
    }
    # The scheduler reads no secret: its own account, bound to nothing.
    assert account == {MCP: RELEASE, SCHEDULER: f"{RELEASE}-scheduler"}
    assert all(
        s["name"] != account[SCHEDULER]
        for b in r.of_kind("RoleBinding")
        for s in b["subjects"]
    )


def test_redis_has_a_generated_password_that_only_redis_and_the_dapr_operator_read(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    r = rendered[value_set]
    secret = r.get("Secret", REDIS)
    data = secret_data(secret)
    assert set(data) == {"redis-password"}
    assert len(data["redis-password"]) >= 32 and data["redis-password"].isalnum()
    # Redis takes it from the Secret through its environment; the manifest never holds it.
    c = container(r.get("StatefulSet", REDIS))
    ref = {"secretKeyRef": {"name": REDIS, "key": "redis-password"}}
    assert env_of(c) == {"REDIS_PASSWORD": ref, "REDISCLI_AUTH": ref}
    assert c["command"][:2] == ["/bin/sh", "-c"]
    assert '--requirepass "$REDIS_PASSWORD"' in c["command"][2]
    others = [o for o in r.objects if o is not secret]
    assert data["redis-password"] not in json.dumps(others)
    # Both Redis components use it, resolved by the Dapr operator: no auth.secretStore.
    for name in ("pubsub", "statestore"):
        component = r.get("Component", name)
        passwords = [m for m in component["spec"]["metadata"] if m["name"] == "redisPassword"]
        assert passwords == [{"name": "redisPassword", "secretKeyRef": ref["secretKeyRef"]}]
        assert "auth" not in component, name
    # So no Role names it (the scheduler's account has none at all), and no sidecar may read
    # it through its secret store.
    assert all(
        REDIS not in rule.get("resourceNames", [])
        for role in r.of_kind("Role")
        for rule in role["rules"]
    )
    scopes = r.get("Configuration", f"{RELEASE}-dapr")["spec"]["secrets"]["scopes"]
    assert all(REDIS not in s["allowedSecrets"] for s in scopes)


def test_redis_persists_to_a_volume_with_an_append_only_file(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    sts = rendered[value_set].get("StatefulSet", REDIS)
    c = container(sts)
    assert option(c, "--appendonly") == "yes"
    assert option(c, "--appendfsync") == "everysec"
    # The volume is the claim's, mounted where Redis writes.
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "4Gi"
    assert c["volumeMounts"] == [{"name": "data", "mountPath": option(c, "--dir")}]
    assert "volumes" not in sts["spec"]["template"]["spec"]
    # `helm uninstall` leaves the claim; it carries the release's labels for `kubectl delete`.
    assert claim["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert sts["spec"]["serviceName"] == REDIS


def test_redis_never_evicts_and_its_memory_limit_leaves_room_for_a_fork(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    """The state store lives in Redis: eviction would lose scheduler state silently. The limit
    covers maxmemory twice over: rewriting the append-only file forks Redis, and under writes
    the copy can grow to the size of the data."""
    c = container(rendered[value_set].get("StatefulSet", REDIS))
    assert option(c, "--maxmemory-policy") == "noeviction"
    maxmemory = redis_bytes(option(c, "--maxmemory"))
    limit = k8s_bytes(c["resources"]["limits"]["memory"])
    assert maxmemory == 2**30
    assert limit >= 2 * maxmemory, (maxmemory, limit)
    assert k8s_bytes(c["resources"]["requests"]["memory"]) <= limit


def test_redis_is_ready_only_when_it_answers_with_the_password(
    rendered: dict[str, Rendered],
) -> None:
    c = container(rendered["default"].get("StatefulSet", REDIS))
    assert c["readinessProbe"]["exec"]["command"] == [
        "/bin/sh", "-c", 'test "$(redis-cli ping)" = PONG'
    ]  # fmt: skip
    assert env_of(c)["REDISCLI_AUTH"] == env_of(c)["REDIS_PASSWORD"]


# --- network policies -------------------------------------------------------------------------

# The pods of the release by component (helm's test pod as `test`).
Pods = dict[str, dict[str, str]]
# The Dapr injector's names for the sidecar's ports (Dapr 1.18: dapr-http 3500, dapr-grpc 50001,
# dapr-internal 50002, dapr-metrics 9090; the kubelet probes dapr's public port 3501).
SIDECAR_PORTS = {"dapr-http", "dapr-grpc", "dapr-internal", "dapr-metrics"}


def pod_labels(r: Rendered) -> Pods:
    pods = {}
    for o in r.objects:
        if o["kind"] in ("Deployment", "StatefulSet"):
            labels = o["spec"]["template"]["metadata"]["labels"]
        elif o["kind"] == "Pod":
            labels = o["metadata"]["labels"]
        else:
            continue
        pods[labels["app.kubernetes.io/component"]] = labels
    return pods


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions), as Kubernetes evaluates it."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, values = e["key"], e.get("values") or []
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[e["operator"]]
        if not ok:
            return False
    return True


def selected(selector: dict[str, Any], pods: Pods) -> set[str]:
    return {name for name, labels in pods.items() if matches(selector, labels)}


def peers(rule: dict[str, Any], pods: Pods) -> Any:
    """Who a rule admits: "anyone" without `from`, else, per peer, the release's pods a bare
    podSelector picks (same namespace) or the peer as written (other namespaces)."""
    if "from" not in rule:
        return "anyone"
    out = []
    for peer in rule["from"]:
        if set(peer) == {"podSelector"}:
            out.append(("pods", frozenset(selected(peer["podSelector"], pods))))
        else:
            out.append(("peer", json.dumps(peer, sort_keys=True)))
    return out


def ingress(policy: dict[str, Any], pods: Pods) -> list[tuple[set[str], Any]]:
    assert policy["spec"]["policyTypes"] == ["Ingress"], "egress is left open (docs/cluster.md)"
    assert "egress" not in policy["spec"]
    for rule in policy["spec"]["ingress"]:
        assert all(p["protocol"] == "TCP" for p in rule["ports"]), rule
    rules = policy["spec"]["ingress"]
    return [({p["port"] for p in rule["ports"]}, peers(rule, pods)) for rule in rules]


PROMETHEUS = ("peer", json.dumps({"namespaceSelector": {}, "podSelector": {"matchLabels": {
    "app.kubernetes.io/name": "prometheus"}}}, sort_keys=True))  # fmt: skip
DAPR_NAMESPACE = ("peer", json.dumps({"namespaceSelector": {"matchLabels": {
    "kubernetes.io/metadata.name": "dapr-system"}}}, sort_keys=True))  # fmt: skip
SIDECARS = ("pods", frozenset({"mcp-server", "scheduler"}))


def test_network_policies_admit_only_each_pods_clients(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    r = rendered[value_set]
    pods = pod_labels(r)
    assert set(pods) == {"mcp-server", "scheduler", "redis", "postgresql", "test"}
    policies = {p["metadata"]["name"]: p for p in r.of_kind("NetworkPolicy")}
    applies = {name: selected(p["spec"]["podSelector"], pods) for name, p in policies.items()}
    assert applies == {
        MCP: {"mcp-server"},
        SCHEDULER: {"scheduler"},
        REDIS: {"redis"},
        POSTGRESQL: {"postgresql"},
    }
    sidecar = [
        ({"metrics", "dapr-metrics"}, [PROMETHEUS]),
        ({"dapr-internal"}, [SIDECARS, DAPR_NAMESPACE]),
    ]
    assert ingress(policies[MCP], pods) == [({"http"}, "anyone"), *sidecar]
    assert ingress(policies[SCHEDULER], pods) == sidecar
    assert ingress(policies[REDIS], pods) == [({"redis"}, [SIDECARS])]
    mcp_only = ("pods", frozenset({"mcp-server"}))
    assert ingress(policies[POSTGRESQL], pods) == [({"postgresql"}, [mcp_only])]


def test_network_policies_name_ports_the_pods_have_and_leave_the_app_ports_closed(
    rendered: dict[str, Rendered],
) -> None:
    """A named port resolves on the selected pod: the app's container ports, or the sidecar's
    that the injector adds. The apps' Dapr app ports and the sidecars' APIs are in no rule: the
    sidecar reaches its app (and the app its sidecar) over the pod's loopback."""
    r = rendered["default"]
    workloads = {
        o["metadata"]["name"]: o for o in r.of_kind("Deployment") + r.of_kind("StatefulSet")
    }
    for name, policy in ((p["metadata"]["name"], p) for p in r.of_kind("NetworkPolicy")):
        own = {p["name"]: p["containerPort"] for p in container(workloads[name])["ports"]}
        opened = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert all(isinstance(p, str) for p in opened), opened
        assert opened <= set(own) | SIDECAR_PORTS, (name, opened, own)
        assert not opened & {"dapr-http", "dapr-grpc"}, name
        numbers = {own[p] for p in opened if p in own}
        if name == MCP:
            assert numbers == {8080, 9464}  # not the app port 8081, which listens on loopback
        if name == SCHEDULER:
            assert numbers == {9464}  # not 8082, the app port (its probes come from the node)


# --- Dapr pub/sub scopes ----------------------------------------------------------------------


def scope_map(value: str) -> dict[str, set[str]]:
    pairs = (scope.split("=") for scope in value.split(";"))
    return {app: set(topics.split(",")) for app, topics in pairs}


def test_pubsub_scopes_say_who_publishes_and_subscribes_to_what(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    pubsub = rendered[value_set].get("Component", "pubsub")
    meta = {m["name"]: m.get("value") for m in pubsub["spec"]["metadata"]}
    assert scope_map(meta["publishingScopes"]) == {
        "mcp-server": {"tasks", "deadletter"},
        "scheduler": {"tasks", "notifications", "deadletter"},
    }
    assert scope_map(meta["subscriptionScopes"]) == {
        "mcp-server": {"tasks", "notifications"},
        "scheduler": {"tasks"},
    }
    # Every app the component is loaded in is scoped (an app left out would be unrestricted).
    assert set(pubsub["scopes"]) == set(scope_map(meta["publishingScopes"]))
    assert set(pubsub["scopes"]) == set(scope_map(meta["subscriptionScopes"]))


# --- security ---------------------------------------------------------------------------------


def test_every_pod_runs_non_root_read_only_without_capabilities(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    specs = rendered[value_set].pod_specs()
    assert len(specs) == 5
    for name, spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc["runAsUser"] > 0, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            where = f"{name}/{c['name']}"
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc.get("privileged") is not True, where
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], where
            assert res["limits"]["memory"], where


def test_only_pods_with_a_sidecar_mount_a_service_account_token(
    rendered: dict[str, Rendered],
) -> None:
    for name, spec in rendered["default"].pod_specs():
        wants = name in (f"Deployment/{MCP}", f"Deployment/{SCHEDULER}")
        assert spec["automountServiceAccountToken"] is wants, name


def test_local_values_use_locally_loaded_images_and_one_pod_each(
    rendered: dict[str, Rendered],
) -> None:
    r = rendered["local"]
    for name, image in [(MCP, "todo-mcp:local"), (SCHEDULER, "todo-scheduler:local")]:
        d = r.get("Deployment", name)
        assert d["spec"]["replicas"] == 1
        assert container(d)["image"] == image
        assert container(d)["imagePullPolicy"] == "Never"
    assert r.get("StatefulSet", POSTGRESQL)["spec"]["replicas"] == 1
    assert r.get("StatefulSet", REDIS)["spec"]["replicas"] == 1
    # The defaults are for a registry: the chart's appVersion as the tag.
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    d = rendered["default"].get("Deployment", MCP)
    assert container(d)["image"] == f"todo-mcp:{app_version}"
    assert d["spec"]["replicas"] == 2


def test_every_object_carries_the_release_labels(rendered: dict[str, Rendered]) -> None:
    for o in rendered["default"].objects:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, o["metadata"]["name"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", o["metadata"]["name"]
        assert re.fullmatch(r"todo-\d+\.\d+\.\d+", labels["helm.sh/chart"])
