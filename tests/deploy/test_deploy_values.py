"""Changing values renders what it should: replicas, an external database, your own Secret,
an external Redis, ingress, tokens, an identity provider, and values the schema refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy_support import (
    DAPR_KINDS,
    DAPR_SCHEMAS,
    MCP,
    NAMESPACE,
    REDIS,
    RELEASE,
    SCHEDULER,
    SECRET,
    Helm,
    Rendered,
    container,
    env_of,
    option,
    pod_annotations,
    schema_errors,
    secret_data,
    validate_k8s,
)

pytestmark = pytest.mark.timeout(120)

EXTERNAL_DB = "postgres://todo:s3cret@db.example.internal:5432/todo?sslmode=disable"

# Identity-provider mode (mcpServer.auth).
ISSUER = "https://auth.example.com/realms/todo"
RESOURCE = "https://todo.example.com/mcp"
METADATA = "/.well-known/oauth-protected-resource"
WITH_ISSUER = {"mcpServer.auth.issuer": ISSUER, "mcpServer.auth.resourceUrl": RESOURCE}
WITH_INGRESS = {"mcpServer.ingress.enabled": True, "mcpServer.ingress.host": "todo.example.com"}


def all_valid(r: Rendered) -> None:
    """Every object still validates: Kubernetes 1.33 strictly, Dapr's against their CRDs."""
    errors = [e for o in r.objects if o["kind"] not in DAPR_KINDS if (e := validate_k8s(o))]
    errors += [
        e
        for o in r.objects
        if o["kind"] in DAPR_KINDS
        for e in schema_errors(DAPR_SCHEMAS[o["kind"]], o)
    ]
    assert not errors, "\n".join(errors)


def redis_meta(r: Rendered, component: str) -> dict[str, Any]:
    meta = r.get("Component", component)["spec"]["metadata"]
    return {m["name"]: m.get("value", m.get("secretKeyRef")) for m in meta}


def test_replicas(helm: Helm) -> None:
    r = helm.template(sets={"mcpServer.replicas": 5, "scheduler.replicas": 3})
    assert r.get("Deployment", MCP)["spec"]["replicas"] == 5
    assert r.get("Deployment", SCHEDULER)["spec"]["replicas"] == 3
    all_valid(r)


def test_external_database_from_a_url(helm: Helm) -> None:
    r = helm.template(sets={"postgresql.enabled": False, "secrets.databaseUrl": EXTERNAL_DB})
    assert r.find("StatefulSet", f"{RELEASE}-postgresql") is None
    assert r.find("Service", f"{RELEASE}-postgresql") is None
    data = secret_data(r.get("Secret", SECRET))
    assert set(data) == {"jwt-secret", "database-url"}
    assert data["database-url"] == EXTERNAL_DB
    all_valid(r)


def test_external_database_needs_a_url_or_a_secret(helm: Helm) -> None:
    err = helm.template_error(sets={"postgresql.enabled": False})
    assert "databaseUrl" in err, err


def test_existing_secret_replaces_the_charts(helm: Helm) -> None:
    r = helm.template(sets={"secrets.existingSecret": "app-secrets", "postgresql.enabled": False})
    assert r.find("Secret", SECRET) is None
    env = env_of(container(r.get("Deployment", MCP)))
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "app-secrets", "key": "database-url"}}
    assert env["TODO_JWT_SECRET"] == {"secretKeyRef": {"name": "app-secrets", "key": "jwt-secret"}}
    assert env["TODO_SECRET_NAME"] == "app-secrets"
    # The secret store may read exactly that Secret.
    assert r.get("Role", f"{RELEASE}-secret-reader")["rules"][0]["resourceNames"] == ["app-secrets"]
    scopes = r.get("Configuration", f"{RELEASE}-dapr")["spec"]["secrets"]["scopes"]
    assert scopes[0]["allowedSecrets"] == ["app-secrets"]
    all_valid(r)


def test_existing_secret_with_the_in_chart_postgresql(helm: Helm) -> None:
    r = helm.template(sets={"secrets.existingSecret": "app-secrets"})
    assert r.find("Secret", SECRET) is None
    pg = container(r.get("StatefulSet", f"{RELEASE}-postgresql"))
    assert env_of(pg)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "app-secrets", "key": "postgres-password"}
    }


def test_given_jwt_secret_and_password_are_used(helm: Helm) -> None:
    jwt = "j" * 40
    r = helm.template(sets={"secrets.jwtSecret": jwt, "postgresql.auth.password": "pw-123"})
    data = secret_data(r.get("Secret", SECRET))
    assert data["jwt-secret"] == jwt
    assert data["postgres-password"] == "pw-123"
    assert data["database-url"] == f"postgres://todo:pw-123@{RELEASE}-postgresql:5432/todo"


def test_secrets_can_stay_out_of_the_environment(helm: Helm) -> None:
    r = helm.template(sets={"secrets.asEnv": False})
    env = env_of(container(r.get("Deployment", MCP)))
    assert "DATABASE_URL" not in env and "TODO_JWT_SECRET" not in env
    assert env["TODO_SECRET_NAME"] == SECRET


def test_each_users_limits_are_values(helm: Helm) -> None:
    r = helm.template(
        sets={
            "mcpServer.limits.tasksPerUser": 10_000_000,
            "mcpServer.limits.ratePerSecond": 0,
            "mcpServer.limits.requestsInFlightPerUser": 3,
        }
    )
    env = env_of(container(r.get("Deployment", MCP)))
    assert env["TODO_TASKS_PER_USER"] == "10000000", "large numbers stay integers"
    assert env["TODO_RATE_LIMIT_PER_SECOND"] == "0"
    assert env["TODO_REQUESTS_IN_FLIGHT_PER_USER"] == "3"


def test_external_redis(helm: Helm) -> None:
    r = helm.template(
        sets={
            "redis.enabled": False,
            "redis.host": "redis.example.internal:6380",
            "redis.existingSecret": "redis-auth",
            "redis.enableTLS": True,
        }
    )
    for kind in ("StatefulSet", "Service", "Secret", "NetworkPolicy"):
        assert r.find(kind, REDIS) is None, kind
    for component in ("pubsub", "statestore"):
        meta = redis_meta(r, component)
        assert meta["redisHost"] == "redis.example.internal:6380", component
        assert meta["redisPassword"] == {"name": "redis-auth", "key": "redis-password"}, component
        assert meta["enableTLS"] == "true", component
    all_valid(r)


def test_external_redis_without_a_password(helm: Helm) -> None:
    r = helm.template(sets={"redis.enabled": False, "redis.host": "redis:6379"})
    meta = redis_meta(r, "pubsub")
    assert meta["redisHost"] == "redis:6379"
    assert "redisPassword" not in meta and "enableTLS" not in meta


def test_in_chart_redis_with_a_password_secret_of_yours(helm: Helm) -> None:
    r = helm.template(
        sets={"redis.existingSecret": "redis-auth", "redis.existingSecretPasswordKey": "pw"}
    )
    assert r.find("Secret", REDIS) is None
    ref = {"secretKeyRef": {"name": "redis-auth", "key": "pw"}}
    env = env_of(container(r.get("StatefulSet", REDIS)))
    assert env["REDIS_PASSWORD"] == ref and env["REDISCLI_AUTH"] == ref
    for component in ("pubsub", "statestore"):
        assert redis_meta(r, component)["redisPassword"] == ref["secretKeyRef"], component
    all_valid(r)


def test_given_redis_password_is_used(helm: Helm) -> None:
    r = helm.template(sets={"redis.password": "p" * 24})
    assert secret_data(r.get("Secret", REDIS)) == {"redis-password": "p" * 24}


def test_redis_persistence_settings_and_off(helm: Helm) -> None:
    r = helm.template(
        sets={"redis.persistence.size": "20Gi", "redis.persistence.storageClass": "fast-ssd"}
    )
    (claim,) = r.get("StatefulSet", REDIS)["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    all_valid(r)

    r = helm.template(sets={"redis.persistence.enabled": False})
    sts = r.get("StatefulSet", REDIS)
    assert "volumeClaimTemplates" not in sts["spec"]
    assert sts["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    # Still an append-only file: a restarted container keeps its data, a new pod does not.
    assert option(container(sts), "--appendonly") == "yes"
    all_valid(r)


def test_redis_memory_follows_its_value(helm: Helm) -> None:
    r = helm.template(sets={"redis.maxMemory": "512mb"})
    c = container(r.get("StatefulSet", REDIS))
    assert option(c, "--maxmemory") == "512mb"
    assert option(c, "--maxmemory-policy") == "noeviction"


def test_network_policies_take_your_peers_or_go(helm: Helm) -> None:
    ingress_nginx = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
    }
    monitoring = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    r = helm.template(
        sets={
            "networkPolicy.mcpServerFrom": [ingress_nginx],
            "networkPolicy.metricsFrom": [monitoring],
            "networkPolicy.daprNamespace": "dapr",
            "metrics.enabled": False,
        }
    )
    rules = r.get("NetworkPolicy", MCP)["spec"]["ingress"]
    # /mcp from the ingress controller, and from the helm test pod (same namespace).
    test_pod = r.get("Pod", f"{RELEASE}-test-mcp-server")["metadata"]["labels"]
    assert rules[0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rules[0]["from"][0] == ingress_nginx
    (test_peer,) = rules[0]["from"][1:]
    assert set(test_peer) == {"podSelector"}
    assert test_peer["podSelector"]["matchLabels"].items() <= test_pod.items()
    assert test_peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"
    for name in (MCP, SCHEDULER):
        rules = r.get("NetworkPolicy", name)["spec"]["ingress"]
        # Without the apps' metrics endpoints only the sidecars' remain.
        assert rules[-2] == {
            "ports": [{"port": "dapr-metrics", "protocol": "TCP"}],
            "from": [monitoring],
        }
        assert rules[-1]["from"][1] == {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dapr"}}
        }
    all_valid(r)

    r = helm.template(sets={"networkPolicy.metricsFrom": []})
    assert "from" not in r.get("NetworkPolicy", SCHEDULER)["spec"]["ingress"][0]

    r = helm.template(sets={"networkPolicy.enabled": False})
    assert r.of_kind("NetworkPolicy") == []

    r = helm.template(sets={"postgresql.enabled": False, "secrets.databaseUrl": EXTERNAL_DB})
    assert {p["metadata"]["name"] for p in r.of_kind("NetworkPolicy")} == {MCP, SCHEDULER, REDIS}


def test_app_ids_rename_the_pubsub_scopes(helm: Helm) -> None:
    r = helm.template(sets={"mcpServer.appId": "todo-mcp", "scheduler.appId": "todo-sched"})
    pubsub = r.get("Component", "pubsub")
    meta = redis_meta(r, "pubsub")
    assert meta["publishingScopes"] == (
        "todo-mcp=tasks,deadletter;todo-sched=tasks,notifications,deadletter"
    )
    assert meta["subscriptionScopes"] == "todo-mcp=tasks,notifications;todo-sched=tasks"
    assert pubsub["scopes"] == ["todo-mcp", "todo-sched"]


def test_external_redis_needs_a_host(helm: Helm) -> None:
    err = helm.template_error(sets={"redis.enabled": False})
    assert "/redis/host" in err, err


def test_ingress_host_is_an_allowed_host(helm: Helm) -> None:
    r = helm.template(
        sets={
            "mcpServer.ingress.enabled": True,
            "mcpServer.ingress.host": "todo.example.com",
            "mcpServer.ingress.tlsSecretName": "todo-tls",
            "mcpServer.allowedHosts": ["todo.internal:443"],
        }
    )
    ingress = r.get("Ingress", MCP)
    assert ingress["spec"]["rules"][0]["host"] == "todo.example.com"
    assert ingress["spec"]["tls"] == [{"hosts": ["todo.example.com"], "secretName": "todo-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert backend["path"] == "/mcp"
    assert backend["backend"]["service"] == {"name": MCP, "port": {"name": "http"}}
    hosts = env_of(container(r.get("Deployment", MCP)))["TODO_ALLOWED_HOSTS"].split(",")
    assert hosts[-2:] == ["todo.example.com", "todo.internal:443"]
    assert f"{MCP}.{NAMESPACE}.svc.cluster.local" in hosts
    all_valid(r)


def test_the_sse_transport_pins_each_client_to_one_replica(helm: Helm) -> None:
    sets = {
        "mcpServer.ingress.enabled": True,
        "mcpServer.ingress.host": "todo.example.com",
        "mcpServer.ingress.annotations.team": "tasks",
    }
    sse = helm.template(sets=sets).get("Ingress", f"{MCP}-sse")
    annotations = sse["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$remote_addr"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["team"] == "tasks", "the ingress's own annotations apply too"
    paths = sse["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/sse", "Exact"), ("/messages", "Exact")]
    assert {p["backend"]["service"]["name"] for p in paths} == {MCP}
    # /mcp keeps no session, and no affinity.
    plain = helm.template(sets=sets).get("Ingress", MCP)
    assert "nginx.ingress.kubernetes.io/upstream-hash-by" not in plain["metadata"]["annotations"]
    off = helm.template(sets={**sets, "mcpServer.ingress.sse.enabled": False})
    assert off.find("Ingress", f"{MCP}-sse") is None


def test_ingress_needs_a_host(helm: Helm) -> None:
    err = helm.template_error(sets={"mcpServer.ingress.enabled": True})
    assert "/mcpServer/ingress/host" in err, err


def test_allowed_origins_and_token_claims(helm: Helm) -> None:
    r = helm.template(
        sets={
            "mcpServer.allowedOrigins": ["https://app.example.com", "http://localhost:*"],
            "mcpServer.jwtAudience": "todo",
            "mcpServer.jwtIssuer": "https://auth.example.com",
        }
    )
    env = env_of(container(r.get("Deployment", MCP)))
    assert env["TODO_ALLOWED_ORIGINS"] == "https://app.example.com,http://localhost:*"
    assert env["TODO_JWT_AUDIENCE"] == "todo"
    assert env["TODO_JWT_ISSUER"] == "https://auth.example.com"


def auth_env(env: dict[str, Any]) -> dict[str, Any]:
    """The identity-provider settings of todo-mcp's environment."""
    return {k: v for k, v in env.items() if k.startswith("TODO_AUTH_") or k == "TODO_RESOURCE_URL"}


def ingress_paths(ingress: dict[str, Any]) -> list[tuple[str, str]]:
    (rule,) = ingress["spec"]["rules"]
    return [(p["path"], p["pathType"]) for p in rule["http"]["paths"]]


def test_an_identity_provider_replaces_the_shared_secret(helm: Helm) -> None:
    r = helm.template(
        sets={
            **WITH_ISSUER,
            "mcpServer.auth.readScope": "todo.read",
            "mcpServer.auth.writeScope": "todo.write",
            "mcpServer.auth.jwksMaxAgeSeconds": 60,
            "mcpServer.auth.introspection.url": "https://auth.example.com/introspect",
            # The shared secret's settings are left out in this mode.
            "mcpServer.jwtAudience": "todo",
            "secrets.jwtSecret": "j" * 40,
        }
    )
    env = env_of(container(r.get("Deployment", MCP)))
    assert auth_env(env) == {
        "TODO_AUTH_ISSUER": ISSUER,
        "TODO_RESOURCE_URL": RESOURCE,
        "TODO_AUTH_READ_SCOPE": "todo.read",
        "TODO_AUTH_WRITE_SCOPE": "todo.write",
        "TODO_AUTH_JWKS_MAX_AGE_SECONDS": "60",
        "TODO_AUTH_INTROSPECTION_URL": "https://auth.example.com/introspect",
    }
    assert "TODO_JWT_SECRET" not in env and "TODO_JWT_AUDIENCE" not in env
    # The Secret holds no JWT secret, neither given nor generated.
    assert set(secret_data(r.get("Secret", SECRET))) == {"database-url", "postgres-password"}
    # Clients reach /mcp at the resource URL: its host is an allowed Host header.
    assert env["TODO_ALLOWED_HOSTS"].split(",")[-1] == "todo.example.com"
    # Egress stays open, so todo-mcp reaches the issuer: the policies still govern ingress only.
    for policy in r.of_kind("NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress"], policy["metadata"]["name"]
    all_valid(r)


def test_the_identity_providers_defaults(helm: Helm) -> None:
    env = env_of(container(helm.template(sets=WITH_ISSUER).get("Deployment", MCP)))
    assert auth_env(env) == {
        "TODO_AUTH_ISSUER": ISSUER,
        "TODO_RESOURCE_URL": RESOURCE,
        "TODO_AUTH_READ_SCOPE": "tasks:read",
        "TODO_AUTH_WRITE_SCOPE": "tasks:write",
        "TODO_AUTH_JWKS_MAX_AGE_SECONDS": "300",
    }


def test_without_an_issuer_the_shared_secret_stays(helm: Helm) -> None:
    # An introspection client means nothing without an issuer.
    r = helm.template(
        sets={
            "mcpServer.auth.introspection.clientId": "todo-mcp",
            "mcpServer.auth.resourceUrl": RESOURCE,
            "mcpServer.jwtAudience": "todo",
        }
    )
    env = env_of(container(r.get("Deployment", MCP)))
    assert auth_env(env) == {}
    assert env["TODO_JWT_SECRET"] == {"secretKeyRef": {"name": SECRET, "key": "jwt-secret"}}
    assert env["TODO_JWT_AUDIENCE"] == "todo"
    assert set(secret_data(r.get("Secret", SECRET))) == {
        "jwt-secret", "database-url", "postgres-password"
    }  # fmt: skip
    assert "todo.example.com" not in env["TODO_ALLOWED_HOSTS"]


@pytest.mark.parametrize(("tls", "scheme"), [(True, "https"), (False, "http")])
def test_the_resource_url_defaults_to_the_ingress_host(helm: Helm, tls: bool, scheme: str) -> None:
    sets = {**WITH_INGRESS, "mcpServer.auth.issuer": ISSUER}
    if tls:
        sets["mcpServer.ingress.tlsSecretName"] = "todo-tls"
    r = helm.template(sets=sets)
    env = env_of(container(r.get("Deployment", MCP)))
    assert env["TODO_RESOURCE_URL"] == f"{scheme}://todo.example.com/mcp"
    all_valid(r)


def test_an_issuer_needs_a_resource_url_or_the_ingress(helm: Helm) -> None:
    err = helm.template_error(sets={"mcpServer.auth.issuer": ISSUER})
    assert "mcpServer.auth.resourceUrl" in err and "is required" in err, err
    # An ingress without a host gives no URL either (the schema says so first).
    err = helm.template_error(
        sets={"mcpServer.auth.issuer": ISSUER, "mcpServer.ingress.enabled": True}
    )
    assert "/mcpServer/ingress/host" in err, err


def test_the_introspection_secret_comes_with_a_client_id_only(helm: Helm) -> None:
    client = {
        **WITH_ISSUER,
        "mcpServer.auth.introspection.clientId": "todo-mcp",
        "secrets.introspectionClientSecret": "introspect-me",
    }
    r = helm.template(sets=client)
    data = secret_data(r.get("Secret", SECRET))
    assert set(data) == {"database-url", "postgres-password", "introspection-client-secret"}
    assert data["introspection-client-secret"] == "introspect-me"
    env = env_of(container(r.get("Deployment", MCP)))
    assert env["TODO_AUTH_INTROSPECTION_CLIENT_ID"] == "todo-mcp"
    assert env["TODO_AUTH_INTROSPECTION_CLIENT_SECRET"] == {
        "secretKeyRef": {"name": SECRET, "key": "introspection-client-secret"}
    }
    all_valid(r)

    # Without a client id, no client secret anywhere (even if one is given).
    r = helm.template(sets={**WITH_ISSUER, "secrets.introspectionClientSecret": "introspect-me"})
    assert "introspection-client-secret" not in secret_data(r.get("Secret", SECRET))
    env = env_of(container(r.get("Deployment", MCP)))
    assert "TODO_AUTH_INTROSPECTION_CLIENT_ID" not in env
    assert "TODO_AUTH_INTROSPECTION_CLIENT_SECRET" not in env

    # Out of the environment: the secret store alone hands it over.
    r = helm.template(sets={**client, "secrets.asEnv": False})
    assert "introspection-client-secret" in secret_data(r.get("Secret", SECRET))
    env = env_of(container(r.get("Deployment", MCP)))
    assert "TODO_AUTH_INTROSPECTION_CLIENT_SECRET" not in env and "DATABASE_URL" not in env


def test_a_client_id_needs_its_secret_unless_the_secret_is_yours(helm: Helm) -> None:
    client = {**WITH_ISSUER, "mcpServer.auth.introspection.clientId": "todo-mcp"}
    err = helm.template_error(sets=client)
    assert "secrets.introspectionClientSecret" in err and "is required" in err, err
    # Your Secret holds `introspection-client-secret` itself.
    r = helm.template(sets={**client, "secrets.existingSecret": "app-secrets"})
    assert r.find("Secret", SECRET) is None
    env = env_of(container(r.get("Deployment", MCP)))
    assert env["TODO_AUTH_INTROSPECTION_CLIENT_SECRET"] == {
        "secretKeyRef": {"name": "app-secrets", "key": "introspection-client-secret"}
    }
    assert "TODO_JWT_SECRET" not in env


def test_the_ingress_routes_the_resource_metadata_with_an_issuer(helm: Helm) -> None:
    sets = {**WITH_INGRESS, "mcpServer.auth.issuer": ISSUER}
    r = helm.template(sets=sets)
    ingress = r.get("Ingress", MCP)
    assert ingress_paths(ingress) == [
        ("/mcp", "Prefix"),
        (METADATA, "ImplementationSpecific"),
        (f"{METADATA}/mcp", "ImplementationSpecific"),
    ]
    (rule,) = ingress["spec"]["rules"]
    assert {p["backend"]["service"]["name"] for p in rule["http"]["paths"]} == {MCP}
    # ingress-nginx's strict path validation refuses a `.` in Exact and Prefix paths.
    for i in r.of_kind("Ingress"):
        for path, kind in ingress_paths(i):
            assert kind == "ImplementationSpecific" or "." not in path, (path, kind)
    # The HTTP+SSE Ingress is unchanged: the metadata needs no affinity.
    sse = ingress_paths(r.get("Ingress", f"{MCP}-sse"))
    assert sse == [("/sse", "Exact"), ("/messages", "Exact")]
    all_valid(r)

    # The path-suffixed form follows the resource URL's path.
    r = helm.template(
        sets={**sets, "mcpServer.auth.resourceUrl": "https://todo.example.com/todo/mcp"}
    )
    assert ingress_paths(r.get("Ingress", MCP))[1:] == [
        (METADATA, "ImplementationSpecific"),
        (f"{METADATA}/todo/mcp", "ImplementationSpecific"),
    ]

    # The shared secret has no metadata to route.
    r = helm.template(sets=WITH_INGRESS)
    assert ingress_paths(r.get("Ingress", MCP)) == [("/mcp", "Prefix")]


def test_the_helm_test_reads_the_resource_metadata_with_an_issuer(helm: Helm) -> None:
    pod = helm.template(sets=WITH_ISSUER).get("Pod", f"{RELEASE}-test-mcp-server")
    script = " ".join(pod["spec"]["containers"][0]["args"])
    assert f"curl -fsS http://{MCP}:8080{METADATA}\n" in script
    assert f"curl -fsS http://{MCP}:8080{METADATA}/mcp\n" in script
    assert 'test "$code" = 401' in script
    pod = helm.template().get("Pod", f"{RELEASE}-test-mcp-server")
    assert METADATA not in " ".join(pod["spec"]["containers"][0]["args"])


def test_a_plain_http_issuer_must_be_allowed(helm: Helm) -> None:
    hydra = {**WITH_ISSUER, "mcpServer.auth.issuer": "http://hydra-public:4444"}
    err = helm.template_error(sets=hydra)
    assert "mcpServer.auth.allowHttpIssuer" in err, err
    r = helm.template(sets={**hydra, "mcpServer.auth.allowHttpIssuer": True})
    env = env_of(container(r.get("Deployment", MCP)))
    assert env["TODO_AUTH_ISSUER"] == "http://hydra-public:4444"
    assert env["TODO_AUTH_ALLOW_HTTP_ISSUER"] == "true"
    # Loopback needs no permission, as in the server.
    for issuer in ("http://127.0.0.1:4444/", "http://localhost:4444", "http://[::1]:4444"):
        r = helm.template(sets={**WITH_ISSUER, "mcpServer.auth.issuer": issuer})
        env = env_of(container(r.get("Deployment", MCP)))
        assert env["TODO_AUTH_ISSUER"] == issuer and "TODO_AUTH_ALLOW_HTTP_ISSUER" not in env


def test_dapr_tokens_can_be_turned_off(helm: Helm) -> None:
    r = helm.template(sets={"dapr.appToken.enabled": False, "dapr.apiToken.enabled": False})
    assert r.find("Secret", f"{RELEASE}-dapr-app-token") is None
    assert r.find("Secret", f"{RELEASE}-dapr-api-token") is None
    for name in (MCP, SCHEDULER):
        d = r.get("Deployment", name)
        assert "dapr.io/app-token-secret" not in pod_annotations(d)
        assert "dapr.io/api-token-secret" not in pod_annotations(d)
        env = env_of(container(d))
        assert "APP_API_TOKEN" not in env and "DAPR_API_TOKEN" not in env
        # The apps refuse to start without the app token unless told; the chart tells them.
        assert env["TODO_INSECURE_NO_APP_TOKEN"] == "true"
    all_valid(r)


def test_tracing_exporter(helm: Helm) -> None:
    r = helm.template(
        sets={
            "dapr.tracing.samplingRate": "0.1",
            "dapr.tracing.otel.endpointAddress": "otel-collector.observability:4317",
        }
    )
    tracing = r.get("Configuration", f"{RELEASE}-dapr")["spec"]["tracing"]
    assert tracing == {
        "samplingRate": "0.1",
        "otel": {
            "endpointAddress": "otel-collector.observability:4317",
            "isSecure": False,
            "protocol": "grpc",
        },
    }


def test_metrics_endpoints_annotations_and_service_monitor(helm: Helm) -> None:
    r = helm.template()
    for name in (MCP, SCHEDULER):
        d = r.get("Deployment", name)
        c = container(d)
        assert env_of(c)["TODO_METRICS_LISTEN"] == "0.0.0.0:9464"
        assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in c["ports"]
        annotations = pod_annotations(d)
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "9464"
        assert annotations["prometheus.io/path"] == "/metrics"
    assert not [o for o in r.objects if o["kind"] == "ServiceMonitor"], "off by default"

    r = helm.template(
        sets={"metrics.serviceMonitor.enabled": True, "metrics.serviceMonitor.labels.release": "prom"}
    )
    monitor = r.get("ServiceMonitor", RELEASE)
    service = r.get("Service", f"{RELEASE}-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    # The monitor selects the metrics Service, which selects both components' pods by the port.
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    for name in (MCP, SCHEDULER):
        pod = r.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod.items(), name
    all_valid(Rendered([o for o in r.objects if o["kind"] != "ServiceMonitor"]))

    r = helm.template(sets={"metrics.enabled": False})
    for name in (MCP, SCHEDULER):
        d = r.get("Deployment", name)
        assert "TODO_METRICS_LISTEN" not in env_of(container(d))
        assert "prometheus.io/scrape" not in pod_annotations(d)
    all_valid(r)


def test_another_release_name_and_namespace_rename_everything(helm: Helm) -> None:
    r = helm.template(release="prod")
    assert r.find("Deployment", "prod-todo-mcp-server") is not None
    env = env_of(container(r.get("Deployment", "prod-todo-mcp-server")))
    assert env["TODO_ALLOWED_HOSTS"].startswith("prod-todo-mcp-server,prod-todo-mcp-server.todo,")
    assert redis_meta(r, "pubsub")["redisHost"] == "prod-todo-redis.todo.svc.cluster.local:6379"
    # Component names are what the apps ask for, whatever the release.
    assert {c["metadata"]["name"] for c in r.of_kind("Component")} == {
        "pubsub", "statestore", "secretstore", "reminders-cron", "recurring-cron"
    }  # fmt: skip


def test_persistence_off_uses_an_empty_dir(helm: Helm) -> None:
    r = helm.template(sets={"postgresql.persistence.enabled": False})
    sts = r.get("StatefulSet", f"{RELEASE}-postgresql")
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    all_valid(r)


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        ({"mcpServer.replcas": 3}, "additional properties 'replcas' not allowed"),
        ({"mcpServer.replicas": -1}, "/mcpServer/replicas"),
        ({"secrets.jwtSecret": "too-short"}, "/secrets/jwtSecret"),
        ({"mcpServer.image.pullPolicy": "Sometimes"}, "/mcpServer/image/pullPolicy"),
        ({"redis.enabled": False, "redis.host": "no-port"}, "/redis/host"),
        ({"mcpServer.appId": "MCP_Server"}, "/mcpServer/appId"),
        ({"dapr.tracing.samplingRate": "2"}, "/dapr/tracing/samplingRate"),
        ({"redis.password": "short"}, "/redis/password"),
        ({"redis.password": "--appendonly-no-x"}, "/redis/password"),
        ({"redis.maxMemory": "1GiB"}, "/redis/maxMemory"),
        ({"redis.persistence.size": "lots"}, "/redis/persistence/size"),
        ({"networkPolicy.mcpServerFrom": [{"pods": {}}]}, "/networkPolicy/mcpServerFrom/0"),
        ({"networkPolicy.daprNamespace": "Dapr System"}, "/networkPolicy/daprNamespace"),
        ({"mcpServer.limits.tasksPerUser": 0}, "/mcpServer/limits/tasksPerUser"),
        ({"mcpServer.limits.requestsInFlightPerUser": 0}, "/mcpServer/limits/requestsInFlightPerUser"),
        ({"mcpServer.auth.jwksMaxAgeSeconds": "300"}, "/mcpServer/auth/jwksMaxAgeSeconds"),
        ({"mcpServer.auth.jwksMaxAgeSeconds": 0}, "/mcpServer/auth/jwksMaxAgeSeconds"),
        ({"mcpServer.auth.allowHttpIssuer": "yes"}, "/mcpServer/auth/allowHttpIssuer"),
        ({"mcpServer.auth.issuer": "auth.example.com"}, "/mcpServer/auth/issuer"),
        ({"mcpServer.auth.resourceUrl": f"{RESOURCE}?x=1"}, "/mcpServer/auth/resourceUrl"),
        ({"mcpServer.auth.readScope": "tasks read"}, "/mcpServer/auth/readScope"),
        ({"mcpServer.auth.introspection.url": "/introspect"}, "/mcpServer/auth/introspection/url"),
        ({"mcpServer.auth.introspection.secret": "x"}, "additional properties 'secret' not allowed"),
        ({"mcpServer.auth.issuers": [ISSUER]}, "additional properties 'issuers' not allowed"),
        ({"secrets.introspectionClientSecret": 42}, "/secrets/introspectionClientSecret"),
    ],
)
def test_the_schema_refuses_bad_values(helm: Helm, sets: dict[str, Any], complaint: str) -> None:
    err = helm.template_error(sets=sets)
    assert complaint in err, err


def test_a_cluster_with_managed_services(helm: Helm, tmp_path: Path) -> None:
    """The real-cluster example of the README: values only, everything external."""
    values = tmp_path / "prod.yaml"
    values.write_text(
        """
mcpServer:
  replicas: 3
  image: { repository: registry.example.com/todo-mcp, tag: "0.1.0" }
  ingress:
    enabled: true
    className: nginx
    host: todo.example.com
    tlsSecretName: todo-tls
    annotations:
      nginx.ingress.kubernetes.io/proxy-buffering: "off"
scheduler:
  replicas: 2
  image: { repository: registry.example.com/todo-scheduler, tag: "0.1.0" }
secrets:
  existingSecret: app-secrets
postgresql:
  enabled: false
redis:
  enabled: false
  host: redis.example.internal:6379
  existingSecret: redis-auth
  enableTLS: true
dapr:
  tracing:
    samplingRate: "0.1"
    otel: { endpointAddress: otel-collector.observability:4317 }
"""
    )
    r = helm.template([values])
    assert {o["kind"] for o in r.objects} == {
        "ServiceAccount", "Secret", "Role", "RoleBinding", "Service", "Deployment", "Ingress",
        "Component", "Configuration", "Resiliency", "Pod", "NetworkPolicy",
    }  # fmt: skip
    assert {d["metadata"]["name"] for d in r.of_kind("Deployment")} == {MCP, SCHEDULER}
    assert {p["metadata"]["name"] for p in r.of_kind("NetworkPolicy")} == {MCP, SCHEDULER}
    # Only the Dapr token Secrets are the chart's; the app Secret is yours.
    assert {s["metadata"]["name"] for s in r.of_kind("Secret")} == {
        f"{RELEASE}-dapr-app-token",
        f"{RELEASE}-dapr-api-token",
    }
    mcp = r.get("Deployment", MCP)
    assert mcp["spec"]["replicas"] == 3
    assert container(mcp)["image"] == "registry.example.com/todo-mcp:0.1.0"
    assert container(mcp)["imagePullPolicy"] == "IfNotPresent"
    assert redis_meta(r, "pubsub")["redisHost"] == "redis.example.internal:6379"
    all_valid(r)
