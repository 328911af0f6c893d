"""Helpers of the client tests: tokens, running the Node clients, talking to the server directly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from server import JWT_SECRET, clean_env  # tests/common, on the path through conftest.py

REPO = Path(__file__).resolve().parents[2]
JS = REPO / "tests" / "clients" / "js"
BIN = JS / "node_modules" / ".bin"

# The ten tools every client must find.
TOOLS = {
    "add_task",
    "add_tasks",
    "list_tasks",
    "get_task",
    "update_task",
    "complete_task",
    "reopen_task",
    "delete_task",
    "set_reminder",
    "cancel_reminder",
    "list_notifications",
    "get_settings",
    "update_settings",
}

# What Ajv (in the TypeScript SDK, the Inspector and the conformance suite) prints for a `format`
# that is not a JSON Schema format, e.g. schemars' `uint32`.
SCHEMA_FORMAT_WARNING = re.compile(r'unknown format "[^"]*" ignored in schema[^\n]*')


def new_user() -> str:
    return f"clients-{uuid.uuid4()}"


def mint_token(sub: str, exp_in: int = 900) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + exp_in}, JWT_SECRET, algorithm="HS256")


@dataclass
class Run:
    """One finished Node process."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\n-> exit {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )

    def json(self) -> Any:
        """The JSON document on stdout (the last line that parses, for one-line summaries)."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            for line in reversed(self.stdout.strip().splitlines()):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        raise AssertionError(f"no JSON on stdout:\n{self.describe()}")

    def schema_warnings(self) -> list[str]:
        return sorted(set(SCHEMA_FORMAT_WARNING.findall(self.stdout + self.stderr)))


@dataclass
class Node:
    """Node >= 22 (from scripts/node.sh) and a private HOME for the clients' own files."""

    node: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        path = f"{Path(self.node).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        # npx must run the locally installed packages, never fetch one.
        return clean_env(
            PATH=path,
            HOME=str(self.home),
            npm_config_offline="true",
            npm_config_yes="false",
            npm_config_update_notifier="false",
            NO_COLOR="1",
            **extra,
        )

    def run(
        self, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 90, cwd: Path = JS
    ) -> Run:
        start = time.monotonic()
        try:
            out = subprocess.run(
                argv,
                env=env if env is not None else self.env(),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"$ {' '.join(argv)} did not finish in {timeout}s\n--- stdout ---\n"
                f"{_text(e.stdout)[-6000:]}\n--- stderr ---\n{_text(e.stderr)[-6000:]}"
            ) from None
        return Run(argv, out.returncode, out.stdout, out.stderr, time.monotonic() - start)

    def script(self, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Run:
        """Runs one of our scripts in tests/clients/js."""
        return self.run([self.node, str(JS / name), *args], env=env, timeout=timeout)


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode(errors="replace")


# --- the server, directly ---------------------------------------------------------------------


def http_status(url: str, token: str | None = None, method: str = "GET", timeout: float = 5) -> int:
    req = urllib.request.Request(url, method=method)
    req.add_header("Accept", "text/event-stream")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except TimeoutError:
        return 200  # a stream that opened and stays open


def call_tool(url: str, token: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """One tools/call over streamable HTTP with plain HTTP (the endpoint keeps no sessions), for
    checking from outside a client what the server stored. Returns the structured content."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}}
    ).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json, text/event-stream")
    req.add_header("MCP-Protocol-Version", "2025-11-25")
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    messages = []
    if text.lstrip().startswith("{"):
        messages.append(json.loads(text))
    else:
        for line in text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                messages.append(json.loads(line[5:]))
    [reply] = [m for m in messages if m.get("id") == 1]
    assert "result" in reply, reply
    assert not reply["result"].get("isError"), reply
    return reply["result"]["structuredContent"]


# --- what every session must show ---------------------------------------------------------

def assert_session(run: Run, transport: str, protocol: str | None = "2025-11-25") -> dict[str, Any]:
    """The summary of a session that did add -> list -> complete (in `protocol`, unless None:
    whatever version the client accepted)."""
    assert run.returncode == 0, run.describe()
    summary = run.json()
    assert summary["ok"] is True, run.describe()
    assert summary["transport"] == transport
    assert TOOLS <= set(summary["tools"]), summary["tools"]
    assert "tools" in summary["capabilities"] and "logging" in summary["capabilities"], summary
    assert summary["server"]["name"], summary
    # The SDK asks for its newest version, which the server speaks.
    assert protocol is None or summary["protocol_version"] == protocol, summary
    added, done = summary["added"], summary["completed"]
    assert summary["marker"] in added["title"] and added["status"] == "pending", summary
    assert summary["listed"] == [added["id"]], summary
    assert done["id"] == added["id"] and done["status"] == "completed" and done["completed_at"], summary
    return summary


def assert_stored(url: str, user: str, summary: dict[str, Any]) -> None:
    """Seen from outside the client: the task is the user's, completed, and nobody else's."""
    mine = call_tool(url, mint_token(user), "list_tasks", {"search": summary["marker"], "status": "all"})
    assert [(t["id"], t["status"]) for t in mine["tasks"]] == [(summary["added"]["id"], "completed")], mine
    theirs = call_tool(url, mint_token(new_user()), "list_tasks", {"search": summary["marker"], "status": "all"})
    assert theirs["tasks"] == [] and theirs["total"] == 0, theirs
