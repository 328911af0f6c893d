"""The official TypeScript SDK (`@modelcontextprotocol/sdk` 1.x) as a client of todo-mcp, over
stdio (with a reminder the server pushes), streamable HTTP and HTTP+SSE (js/sdk-client.mjs)."""

from __future__ import annotations

from typing import Any

import pytest

from nodeclients import Run, assert_session, assert_stored, http_status


def sdk_client(node: Any, *args: str, timeout: float = 90) -> Run:
    return node.script("sdk-client.mjs", *args, timeout=timeout)


def test_stdio_session_with_a_pushed_reminder(node, stdio):
    """StdioClientTransport launches the binary; a reminder 3 s ahead arrives as a `todo.reminders`
    log message within a second of its time, once, for the right task, and stays listed."""
    env = [a for k, v in stdio.env.items() for a in ("--env", f"{k}={v}")]
    run = sdk_client(node, "stdio", *env, "--expect-reminder", "3", "--", *stdio.argv)
    summary = assert_session(run, "stdio")
    reminder = summary["reminder"]
    assert reminder is not None, run.describe()
    assert reminder["logger"] == "todo.reminders" and reminder["level"] == "notice", reminder
    data = reminder["data"]
    assert data["task_id"] == reminder["task_id"] and summary["marker"] in data["title"], data
    assert data["message"] == f'Reminder: "{data["title"]}"', data
    assert -50 <= reminder["lateness_ms"] <= 1500, reminder


def test_streamable_http_session(node, http, user, token):
    run = sdk_client(node, "http", http.url, "--token", token)
    summary = assert_session(run, "http")
    assert summary["reminder"] is None
    assert_stored(http.url, user, summary)




def test_streamable_http_pushed_reminder(node, http, token):
    """A handshake-era client's `GET /mcp` stream carries its user's reminders as log messages."""
    run = sdk_client(node, "http", http.url, "--token", token, "--expect-reminder", "2", "--reminder-timeout", "3")
    assert_session(run, "http")


def require_sse(http, token) -> str:
    """The HTTP+SSE endpoint; an expected failure while the server answers `GET /sse` with 404."""
    if http_status(f"{http.base}/sse", token, timeout=2) == 404:
        pytest.xfail("HTTP+SSE transport not yet served (GET /sse answers 404)")
    return f"{http.base}/sse"


def test_http_sse_session(node, http, user, token):
    """SSEClientTransport (HTTP+SSE, protocol 2024-11-05): `GET /sse`, then POSTs to the endpoint
    the server names in its `endpoint` event."""
    run = sdk_client(node, "sse", require_sse(http, token), "--token", token)
    summary = assert_session(run, "sse", protocol=None)
    assert_stored(http.url, user, summary)


def test_http_sse_pushed_reminder(node, http, token):
    """Over HTTP+SSE the session's stream carries the reminder as the log message stdio clients
    get, once the client has set a logging level (the script does)."""
    url = require_sse(http, token)
    run = sdk_client(node, "sse", url, "--token", token, "--expect-reminder", "2", "--reminder-timeout", "3")
    assert_session(run, "sse", protocol=None)


def test_tool_schemas_raise_no_validator_warnings(node, http, token):
    """The SDK compiles every tool's output schema with Ajv when it lists tools: nothing in them
    may be unknown to it (schemars' integer formats were: `unknown format "uint32" ignored in
    schema at path ...`, issue 14 item 7)."""
    run = sdk_client(node, "http", http.url, "--token", token)
    assert run.returncode == 0, run.describe()
    assert run.schema_warnings() == [], run.schema_warnings()
