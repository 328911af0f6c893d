"""The HTTP transport: bearer authentication, Host/Origin checks, probes, limits, shutdown."""

from __future__ import annotations

import json
import os
import subprocess
import time
import warnings

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import HttpServer
from support import JWT_SECRET, TOOL_NAMES, add, call_ok, get, list_all, mint_token, new_user, unsigned_token

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
TOOLS_LIST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "e2e-raw", "version": "1"},
        },
    }
)


def post(server: HttpServer, headers: dict[str, str], body: str = TOOLS_LIST) -> httpx2.Response:
    return httpx2.post(server.url, content=body, headers={**HEADERS, **headers}, timeout=10)


def sse_messages(response: httpx2.Response) -> list[dict]:
    """The JSON-RPC messages of a response sent as server-sent events (or as plain JSON)."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    messages = []
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            messages.append(json.loads(line[5:]))
    return messages


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs512_token() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the key is short for SHA-512
        return mint_token("alice", algorithm="HS512")


# case -> (headers, text expected in the challenge's error_description; None: no error attribute)
BAD_CREDENTIALS = {
    "no-header": (lambda: {}, None),
    "basic-scheme": (lambda: {"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer <token>"),
    "bearer-without-token": (lambda: {"Authorization": "Bearer"}, "Bearer <token>"),
    "token-without-scheme": (lambda: {"Authorization": mint_token("alice")}, "Bearer <token>"),
    "not-a-jwt": (lambda: bearer("not.a.jwt"), "invalid"),
    "wrong-secret": (lambda: bearer(mint_token("alice", secret="another-secret-that-is-long-enough-123")), "invalid"),
    "expired": (lambda: bearer(mint_token("alice", exp_in=-120)), "expired"),
    "not-yet-valid": (lambda: bearer(mint_token("alice", nbf=int(time.time()) + 600)), "not valid yet"),
    "missing-sub": (lambda: bearer(mint_token(None)), "invalid"),
    "blank-sub": (lambda: bearer(mint_token("  ")), "invalid"),
    "missing-exp": (lambda: bearer(mint_token("alice", exp_in=None)), "invalid"),
    "alg-none": (lambda: bearer(unsigned_token("alice")), "invalid"),
    "hs512": (lambda: bearer(hs512_token()), "invalid"),
}


@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
def test_bad_credentials_get_401_with_a_challenge(http, case):
    make_headers, reason = BAD_CREDENTIALS[case]
    r = post(http, make_headers())
    assert r.status_code == 401, r.text
    challenge = r.headers.get("www-authenticate", "")
    assert challenge.startswith('Bearer realm="todo-mcp"'), challenge
    if reason is None:
        assert "error=" not in challenge
    else:
        assert 'error="invalid_token"' in challenge
        assert reason in challenge, challenge
    assert "jsonrpc" not in r.text


def test_401_for_every_method_on_mcp(http):
    for response in (
        httpx2.get(http.url, headers={"Accept": "text/event-stream"}, timeout=10),
        httpx2.delete(http.url, timeout=10),
        post(http, {}, INITIALIZE),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_valid_token_is_served(http):
    r = post(http, bearer(mint_token(new_user())))
    assert r.status_code == 200, r.text
    (message,) = sse_messages(r)
    assert message["jsonrpc"] == "2.0" and message["id"] == 1
    assert len(message["result"]["tools"]) == len(TOOL_NAMES)
    # `aud`, `iss` and other claims are ignored unless the server is configured to check them.
    r = post(http, bearer(mint_token(new_user(), aud="anything", iss="anyone", scope="x")))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sdk_client_with_a_bad_token_fails_to_connect(http, mode):
    def mcp_errors(e: BaseException) -> list[MCPError]:
        if isinstance(e, MCPError):
            return [e]
        return [x for sub in getattr(e, "exceptions", ()) for x in mcp_errors(sub)]

    with pytest.raises(BaseException) as caught:
        async with create_mcp_http_client(headers=bearer(mint_token("x", exp_in=-600))) as h:
            async with Client(streamable_http_client(http.url, http_client=h), mode=mode):
                pass
    assert mcp_errors(caught.value), repr(caught.value)


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("Host", "evil.example", 403),
        ("Host", "evil.example:80", 403),
        ("Host", "localhost", 200),
        ("Host", "LOCALHOST:{port}", 200),
        ("Host", "[::1]:{port}", 200),
        ("Origin", "http://evil.example", 403),
        ("Origin", "http://localhost.evil.example:{port}", 403),
        ("Origin", "https://evil.example", 403),
        ("Origin", "http://localhost:{port}", 200),
        ("Origin", "http://127.0.0.1:{port}", 200),
    ],
)
def test_host_and_origin_allow_lists(http, header, value, status):
    r = post(http, {**bearer(mint_token(new_user())), header: value.format(port=http.port)})
    assert r.status_code == status, r.text
    if status == 200:
        assert sse_messages(r)[0]["result"]["tools"]
    else:
        assert "jsonrpc" not in r.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_no_token(http, path):
    for headers in ({}, {"Authorization": "Bearer garbage"}):
        r = httpx2.get(f"{http.base}{path}", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] in ("ok", "ready")
    if path == "/readyz":
        assert (body["status"], body["database"]) == ("ready", "ok"), body


async def test_oversized_body_is_refused_and_changes_nothing(http):
    user = new_user()
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "add_task", "arguments": {"title": "big", "description": "x" * (1024 * 1024)}},
    }
    r = post(http, bearer(mint_token(user)), json.dumps(call))
    assert r.status_code == 413, r.text[:200]
    async with create_mcp_http_client(headers=bearer(mint_token(user))) as h:
        async with Client(streamable_http_client(http.url, http_client=h), mode="auto") as c:
            assert (await list_all(c))["total"] == 0


def test_http_transport_refuses_to_start_without_a_strong_secret(binary, database_url):
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TODO_", "DAPR_")) and k != "DATABASE_URL"
    }
    base_env.update(TODO_TRANSPORT="http", TODO_LISTEN="127.0.0.1:0", DATABASE_URL=database_url)
    for secret, needle in ((None, "TODO_JWT_SECRET"), ("too-short", "32 bytes")):
        env = dict(base_env)
        if secret:
            env["TODO_JWT_SECRET"] = secret
        out = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert out.returncode != 0
        assert needle in out.stderr, out.stderr
        assert out.stdout == ""


async def test_sigterm_stops_gracefully_and_data_survives_a_restart(binary, database_url, tmp_path, _server_logs):
    log = tmp_path / "server.log"
    _server_logs.append(("restarted http server", log))
    server = HttpServer(binary, database_url, log).start()
    user = new_user()
    try:
        async with create_mcp_http_client(headers=bearer(mint_token(user))) as h:
            async with Client(streamable_http_client(server.url, http_client=h), mode="legacy") as c:
                task = await add(c, "survives restarts", tags=["durable"], reminders=[{"at": "2099-01-01"}])
                task = await get(c, task["id"])
    finally:
        code = server.stop()
    assert code == 0, f"exit code after SIGTERM: {code}"
    with pytest.raises(httpx2.HTTPError):
        httpx2.get(f"{server.base}/healthz", timeout=2)

    server.start()
    try:
        async with create_mcp_http_client(headers=bearer(mint_token(user))) as h:
            async with Client(streamable_http_client(server.url, http_client=h), mode="auto") as c:
                assert await get(c, task["id"]) == task
                assert (await call_ok(c, "list_tasks", {"tags": ["durable"]}))["tasks"] == [task]
    finally:
        assert server.stop() == 0


def test_the_secret_is_not_in_the_server_log(http):
    post(http, bearer(mint_token(new_user())))
    assert JWT_SECRET not in http.log.read_text(errors="replace")
