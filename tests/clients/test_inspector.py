"""The MCP Inspector's CLI (`npx @modelcontextprotocol/inspector --cli`, v2): `tools/list` and
`tools/call` against the binary over stdio and against the HTTP endpoint with the token header,
in both protocol eras it negotiates (`--protocol-era legacy`: the 2025-11-25 handshake; `auto`:
2026-07-28 when the server offers it). Output is read as `--format json`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from nodeclients import BIN, TOOLS, Run, mint_token, new_user

ERAS = ["legacy", "auto"]


class Inspector:
    """Runs `mcp-inspector --cli` against one server: the stdio command or the HTTP URL."""

    def __init__(self, node: Any, target: list[str], era: str = "legacy") -> None:
        self.node, self.target, self.era = node, target, era

    def run(self, *args: str) -> Run:
        argv = [str(BIN / "mcp-inspector"), "--cli", "--format", "json", "--protocol-era", self.era]
        return self.node.run([*argv, *self.target, *args])

    def result(self, *args: str) -> Any:
        run = self.run(*args)
        assert run.returncode == 0, run.describe()
        out = run.json()
        assert "result" in out, run.describe()
        return out["result"]

    def call(self, tool: str, **args: str) -> dict[str, Any]:
        pairs = [f"{k}={v}" for k, v in args.items()]
        result = self.result("--method", "tools/call", "--tool-name", tool, "--tool-arg", *pairs)
        assert not result.get("isError"), result
        assert result["content"] and result["content"][0]["type"] == "text", result
        return result["structuredContent"]


def http_target(http: Any, user: str) -> list[str]:
    return [http.url, "--transport", "http", "--header", f"Authorization: Bearer {mint_token(user)}"]


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=ERAS)
def inspector(request: pytest.FixtureRequest, node, transport, user) -> Inspector:
    era = request.param
    if transport == "stdio":
        stdio = request.getfixturevalue("stdio")
        # The Inspector's own flags end at the command; the server reads the rest from -e.
        env_args = [a for k, v in stdio.env.items() for a in ("-e", f"{k}={v}")]
        env_args += ["-e", f"TODO_USER={user}", "-e", f"DATABASE_URL=sqlite://{stdio.tmp / 'todo.db'}"]
        target = [*env_args, stdio.binary]
        return Inspector(node, target, era)
    return Inspector(node, http_target(request.getfixturevalue("http"), user), era)


def test_tools_list(inspector):
    result = inspector.result("--method", "tools/list")
    tools = {t["name"]: t for t in result["tools"]}
    assert TOOLS <= set(tools), sorted(tools)
    for name in TOOLS:
        tool = tools[name]
        assert tool["description"], tool
        assert tool["inputSchema"]["type"] == "object" and tool["outputSchema"]["type"] == "object", tool
    assert tools["add_task"]["inputSchema"]["required"] == ["title"], tools["add_task"]["inputSchema"]
    assert tools["list_tasks"]["annotations"]["readOnlyHint"] is True, tools["list_tasks"]
    assert tools["delete_task"]["annotations"]["destructiveHint"] is True, tools["delete_task"]


def test_tools_call_add_list_complete(inspector):
    marker = f"inspector-{uuid.uuid4()}"
    title = f"Renew the passport {marker}"
    task = inspector.call("add_task", title=title, priority="low")["task"]
    assert task["title"] == title and task["status"] == "pending" and task["priority"] == "low", task

    listing = inspector.call("list_tasks", search=marker)
    assert [t["id"] for t in listing["tasks"]] == [task["id"]] and listing["total"] == 1, listing

    done = inspector.call("complete_task", task_id=task["id"])["task"]
    assert done["status"] == "completed" and done["completed_at"], done
    assert inspector.call("list_tasks", search=marker)["tasks"] == [], "a completed task is still pending"
    assert [t["id"] for t in inspector.call("list_tasks", search=marker, status="completed")["tasks"]] == [task["id"]]


def test_tools_call_mistake_is_a_tool_error(inspector):
    """A task that is not there comes back as a tool result with `isError: true` and a message,
    which the CLI prints and reports with its exit code for tool errors (5)."""
    run = inspector.run("--method", "tools/call", "--tool-name", "complete_task", "--tool-arg", f"task_id={uuid.uuid4()}")
    assert run.returncode == 5, run.describe()
    result = run.json()["result"]
    assert result.get("isError") is True and "structuredContent" not in result, result
    assert "not found" in result["content"][0]["text"].lower(), result


def test_another_users_tasks_are_not_listed(node, http):
    marker = f"inspector-{uuid.uuid4()}"
    alice = Inspector(node, http_target(http, new_user()))
    bob = Inspector(node, http_target(http, new_user()))
    alice.call("add_task", title=f"Alice's {marker}")
    assert bob.call("list_tasks", search=marker, status="all")["total"] == 0


def test_tool_listing_prints_no_validator_warnings(inspector):
    """No `unknown format "..." ignored in schema` from the validator (issue 14 item 7)."""
    run = inspector.run("--method", "tools/list")
    assert run.returncode == 0, run.describe()
    assert run.schema_warnings() == [], run.describe()


def test_tool_schemas_are_portable(node, http, user):
    """`--strict` lints every tool schema for portability across clients (exit 6 on an
    error-severity finding): it must find nothing (an optional field is `anyOf` branches of one
    type each, not a type union such as `["string", "null"]`)."""
    run = Inspector(node, http_target(http, user)).run("--method", "tools/list", "--strict")
    assert run.returncode == 0, run.describe()
    findings = [(t["toolName"], f["rule"], f["severity"], f["schema"], f["path"])
                for t in run.json().get("schemaFindings", []) for f in t["findings"]]
    assert findings == [], findings[:20]
