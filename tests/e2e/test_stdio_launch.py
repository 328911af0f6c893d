"""Stdio launches: the Claude Desktop configuration from the README, a clean stdout, the local user,
and data that survives a restart."""

from __future__ import annotations

import json
import os
import queue
import re
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from support import REPO, TOOL_NAMES, Y, add, call_ok, get, ids, list_all

pytestmark = pytest.mark.anyio

DESKTOP_USER = "desktop-user"


def readme_desktop_config() -> dict[str, Any]:
    """The `claude_desktop_config.json` snippet of the README (a default if there is none yet)."""
    readme = REPO / "README.md"
    if readme.is_file():
        for block in re.findall(r"```json\n(.*?)```", readme.read_text(), flags=re.S):
            if "mcpServers" in block:
                return json.loads(block)
    return {"mcpServers": {"todo": {"command": "/absolute/path/to/todo-mcp"}}}


def desktop_env(home: Path, **extra: str) -> dict[str, str]:
    """What a desktop app passes: a HOME and a user, no DATABASE_URL, no TODO_* and no XDG_* vars."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "USER": DESKTOP_USER,
        "LOGNAME": DESKTOP_USER,
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


class RawStdio:
    """The binary on pipes, speaking newline-delimited JSON-RPC, with every stdout line kept."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, stderr: Path) -> None:
        self._stderr = open(stderr, "wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, id_: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        while True:
            line = self._queue.get(timeout=20)
            assert line is not None, "server closed stdout"
            message = json.loads(line)
            if message.get("id") == id_:
                return message

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._stderr.close()
        while self._queue.get(timeout=5) is not None:
            pass
        return code


def assert_only_json_rpc(lines: list[str]) -> None:
    assert lines, "no output at all"
    for line in lines:
        assert line.endswith("\n"), repr(line)
        message = json.loads(line)  # raises on anything that is not JSON
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", line
        is_response = "id" in message and ("result" in message) != ("error" in message)
        is_request_or_notification = isinstance(message.get("method"), str)
        assert is_response or is_request_or_notification, line


def raw_session(argv: list[str], env: dict[str, str], cwd: Path, stderr: Path, title: str) -> dict[str, Any]:
    """initialize, initialized, tools/list, add_task, a failing call, list_tasks; then EOF."""
    server = RawStdio(argv, env, cwd, stderr)
    try:
        init = server.request(
            1,
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "claude-ai", "version": "0.1.0"},
            },
        )
        assert init["result"]["protocolVersion"] == "2025-11-25"
        assert init["result"]["serverInfo"]["name"] == "todo-mcp"
        assert "tools" in init["result"]["capabilities"]
        server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = server.request(2, "tools/list", {})["result"]["tools"]
        assert len(tools) == len(TOOL_NAMES)
        added = server.request(3, "tools/call", {"name": "add_task", "arguments": {"title": title, "tags": ["desktop"]}})
        assert added["result"].get("isError") in (None, False), added
        task = added["result"]["structuredContent"]["task"]
        failed = server.request(4, "tools/call", {"name": "add_task", "arguments": {"title": ""}})
        assert failed["result"]["isError"] is True
        listed = server.request(5, "tools/call", {"name": "list_tasks", "arguments": {"tags": ["desktop"]}})
        assert task["id"] in [t["id"] for t in listed["result"]["structuredContent"]["tasks"]]
    finally:
        code = server.close()
    assert code == 0, f"exit code {code} after stdin closed"
    assert_only_json_rpc(server.lines)
    assert len(server.lines) == 5, server.lines  # one response per request, nothing else
    return task


async def test_claude_desktop_launch_uses_the_data_directory_and_a_clean_stdout(binary, tmp_path, _server_logs):
    config = readme_desktop_config()
    spec = config["mcpServers"]["todo"]
    # What the README tells people to write: the command, no environment, no database settings.
    assert set(spec) <= {"command", "args"}, spec
    assert not spec.get("args"), spec
    spec["command"] = binary
    config_file = tmp_path / "claude_desktop_config.json"
    config_file.write_text(json.dumps(config, indent=2))
    spec = json.loads(config_file.read_text())["mcpServers"]["todo"]
    argv = [spec["command"], *spec.get("args", [])]

    home = tmp_path / "home"
    home.mkdir()
    cwd = tmp_path / "cwd"  # desktop apps start servers from wherever they like
    cwd.mkdir()
    stderr = tmp_path / "stderr.log"
    _server_logs.append(("desktop launch", stderr))

    first = raw_session(argv, desktop_env(home), cwd, stderr, "from the desktop")
    assert first["owner"] == DESKTOP_USER
    # Verbose logging still goes to stderr only.
    second = raw_session(argv, desktop_env(home, RUST_LOG="trace"), cwd, stderr, "with trace logs")
    assert "DEBUG" in stderr.read_text() or "TRACE" in stderr.read_text()

    db = home / ".local" / "share" / "todo-mcp" / "todo.db"
    assert db.is_file(), sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert list(cwd.iterdir()) == []

    # The official SDK, launched the same way, sees the same store.
    log = tmp_path / "sdk.log"
    _server_logs.append(("desktop launch via SDK", log))
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=desktop_env(home), cwd=cwd)
    with open(log, "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="auto") as c:
            listing = await list_all(c, tags=["desktop"])
            assert set(ids(listing)) == {first["id"], second["id"]}
            third = await add(c, "from the SDK")
            assert third["owner"] == DESKTOP_USER

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT title, owner FROM tasks ORDER BY title").fetchall()
    assert rows == [
        ("from the SDK", DESKTOP_USER),
        ("from the desktop", DESKTOP_USER),
        ("with trace logs", DESKTOP_USER),
    ]


async def test_the_local_user_comes_from_the_flag_then_the_environment(binary, tmp_path, _server_logs):
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite://{tmp_path / 'users.db'}"
    owners = {}
    for name, args, extra in (
        ("flag", ["--user", "flag-user"], {"TODO_USER": "env-user"}),
        ("env", [], {"TODO_USER": "env-user"}),
        ("os", [], {}),
    ):
        log = tmp_path / f"{name}.log"
        _server_logs.append((name, log))
        params = StdioServerParameters(
            command=binary, args=[*args, "--database-url", url], env=desktop_env(home, **extra)
        )
        with open(log, "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as c:
                owners[name] = (await add(c, f"by {name}"))["owner"]
                # Each user sees only their own task.
                assert [t["title"] for t in (await list_all(c))["tasks"]] == [f"by {name}"]
    assert owners == {"flag": "flag-user", "env": "env-user", "os": DESKTOP_USER}


@pytest.mark.parametrize("transport", ["stdio-legacy", "stdio-auto"], indirect=True)
async def test_data_survives_a_restart(transport):
    async with transport.connect() as c:
        task = await add(
            c,
            "remember me",
            due=f"{Y}-03-01T09:00",
            time_zone="Europe/Paris",
            tags=["durable"],
            reminders=[{"minutes_before": 60}],
            recurrence={"frequency": "monthly"},
        )
        done = await add(c, "done before the restart")
        await call_ok(c, "complete_task", {"task_id": done["id"]})
        before = await list_all(c)
    async with transport.connect() as c:
        assert await list_all(c) == before
        assert await get(c, task["id"]) == task
        assert ids(await call_ok(c, "list_tasks", {"tags": ["durable"]})) == [task["id"]]


def test_an_unusable_database_url_fails_fast_and_keeps_stdout_clean(binary, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    for url, needle in (
        ("mysql://localhost/todo", "postgres://"),
        (f"sqlite://{blocker}/todo.db", "database"),
    ):
        out = subprocess.run(
            [binary, "--database-url", url, "--user", "x"],
            env=desktop_env(tmp_path),
            input=b"",
            capture_output=True,
            timeout=30,
        )
        assert out.returncode != 0, url
        assert out.stdout == b"", out.stdout
        assert needle in out.stderr.decode(), out.stderr.decode()
