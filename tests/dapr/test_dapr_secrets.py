"""The server takes its JWT secret and database URL from the Dapr secret store."""

from __future__ import annotations

import json
import subprocess

import pytest

from dapr_support import (
    APP_TOKEN,
    JWT_SECRET,
    REPO,
    Daprd,
    Mcp,
    McpServer,
    clean_env,
    free_port,
    new_user,
    write_resources,
)


def test_secrets_come_from_the_secret_store(main, main_group):
    # Nothing in the server's environment: every secret came through the sidecar.
    assert not {"TODO_JWT_SECRET", "DATABASE_URL"} & set(main.env)
    log = main.log.read_text(errors="replace")
    for key in ("jwt-secret", "database-url"):
        assert f"secret read from the Dapr secret store store=secretstore key={key}" in log
    assert main.readyz()["database"] == "ok"

    # Tokens signed with the secret in the store are accepted, others are not.
    user = new_user()
    assert main.client(user).call("list_tasks", {})["total"] == 0
    dev_secret = json.loads((REPO / "components" / "secrets.dev.json").read_text())["jwt-secret"]
    for secret in (dev_secret, JWT_SECRET[::-1]):
        r = Mcp(f"{main.base}/mcp", user, secret).post(
            "tools/call", {"name": "list_tasks", "arguments": {}}
        )
        assert r.status_code == 401, r.text


@pytest.mark.parametrize(
    ("missing", "env_name"), [("jwt-secret", "TODO_JWT_SECRET"), ("database-url", "DATABASE_URL")]
)
def test_a_secret_missing_everywhere_stops_start_up(infra, proc_logs, missing, env_name):
    secrets = {"jwt-secret": JWT_SECRET, "database-url": infra.pg.admin_url}
    del secrets[missing]
    name = f"without-{missing}"
    app_id = f"mcp-without-{missing}"
    resources = write_resources(
        infra.base / name / "resources",
        redis_host=infra.redis_host,
        app_ids=[app_id],
        secrets_data=secrets,
    )
    app_port = free_port()
    log = infra.base / name / "daprd.log"
    proc_logs.append((f"daprd {name}", log))
    daprd = Daprd(infra.daprd, app_id, app_port, resources, log)
    try:
        daprd.start()
        # The store answers for the key that is there.
        present = next(iter(secrets))
        assert daprd.http.get(f"/v1.0/secrets/secretstore/{present}").json() == {
            present: secrets[present]
        }
        out = subprocess.run(
            [
                infra.binary,
                "--transport", "http",
                "--listen", f"127.0.0.1:{free_port()}",
                "--app-listen", f"127.0.0.1:{app_port}",
                "--events", "dapr",
            ],  # fmt: skip
            env=clean_env(
                DAPR_GRPC_PORT=str(daprd.grpc_port), RUST_LOG="info", APP_API_TOKEN=APP_TOKEN
            ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        daprd.close()
    assert out.returncode != 0, out.stderr
    error_lines = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert error_lines, out.stderr
    message = error_lines[-1]
    assert f"`{missing}`" in message and "secretstore" in message and env_name in message, message


def test_both_secrets_can_come_from_one_named_secret(infra, proc_logs):
    """As in Kubernetes, where a Secret holds both keys: TODO_SECRET_NAME names it."""
    name, app_id = "named-secret", "mcp-named-secret"
    resources = write_resources(
        infra.base / name / "resources",
        redis_host=infra.redis_host,
        app_ids=[app_id],
        secrets_data={
            "todo-secrets": {"jwt-secret": JWT_SECRET, "database-url": infra.pg.create_database()}
        },
        secretstore_metadata={"multiValued": "true"},
    )
    app_port = free_port()
    dlog, slog = infra.base / name / "daprd.log", infra.base / name / "server.log"
    proc_logs.extend([(f"daprd {name}", dlog), (f"todo-mcp {name}", slog)])
    daprd = Daprd(infra.daprd, app_id, app_port, resources, dlog)
    server = McpServer(
        infra.binary, name, daprd.grpc_port, app_port, slog, env={"TODO_SECRET_NAME": "todo-secrets"}
    )
    try:
        daprd.start()
        server.start()
        log = server.log.read_text(errors="replace")
        for key in ("jwt-secret", "database-url"):
            assert f"secret read from the Dapr secret store store=secretstore key={key}" in log
        assert not {"TODO_JWT_SECRET", "DATABASE_URL"} & set(server.env)
        assert server.client(new_user()).call("list_tasks", {})["total"] == 0
    finally:
        server.close()
        daprd.close()
