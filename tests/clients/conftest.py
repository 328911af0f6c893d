"""Fixtures of the client tests: real Node MCP clients from npm driving the `todo-mcp` binary.

Every client does what a person's assistant would (add a task, find it, complete it, and receive
a reminder the server pushes), over each transport it has:

- the official TypeScript SDK (`@modelcontextprotocol/sdk` 1.x, `js/sdk-client.mjs`): stdio,
  streamable HTTP, and HTTP+SSE (`SSEClientTransport`: an expected failure while `GET /sse`
  answers 404, decided at run time); the pushed reminder over stdio, and over HTTP as expected
  failures (strict: they turn into failures, to be unmarked, once the server pushes there);
- `mcp-remote`, the bridge Claude Desktop runs for a remote server, launched the way a
  `claude_desktop_config.json` entry launches it (`npx mcp-remote <url> --header
  "Authorization:${AUTH_HEADER}"`, the token in the entry's `env`), driven over its stdio by the
  TypeScript SDK: TS client -> mcp-remote -> todo-mcp over HTTP, by default and with
  `--protocol auto` (2026-07-28 upstream); the pushed reminder as an expected failure;
- the MCP Inspector's CLI (`npx @modelcontextprotocol/inspector --cli`, v2): `tools/list` and
  `tools/call` over stdio and streamable HTTP, in both protocol eras. (The separate package
  `@modelcontextprotocol/inspector-cli` is the deprecated v1 CLI, and 1.0.3 cannot run at all when
  installed on its own: `Cannot find module '.../node_modules/@modelcontextprotocol/package.json'`.)
- the official conformance suite (`@modelcontextprotocol/conformance`), its `server` scenarios
  that apply to a server with tools and logging but no prompts, resources or completions, run
  against the HTTP server one by one (`conformance server --url ... --scenario ...`). The suite
  has no option for a header, so it reaches the server through `js/bearer-proxy.mjs`, which adds
  the bearer token and passes everything else through unchanged (Host and Origin included).

Conformance 0.1.16's server scenarios (`conformance list --server`), and which run here:

  run:      server-initialize, ping, tools-list, logging-set-level, dns-rebinding-protection,
            server-sse-polling (its check server-sse-disconnect-resume warns by design: the
            server never closes a call's stream early, so there is nothing left to resume),
            server-sse-multiple-streams (the initialize answer names a session id, which the
            stateless server hands out so that clients open their GET event stream)
  excluded: tools-call-simple-text, tools-call-image, tools-call-audio,
            tools-call-embedded-resource, tools-call-mixed-content, tools-call-with-logging,
            tools-call-error, tools-call-with-progress, tools-call-sampling,
            tools-call-elicitation, json-schema-2020-12, elicitation-sep1034-defaults,
            elicitation-sep1330-enums: each calls or looks up a fixture tool of the suite's
            reference server (`test_simple_text`, `test_error_handling`,
            `json_schema_2020_12_tool`, ...) that a real server does not have; what they check
            of real tools (errors as `isError` results, log messages, schemas) the clients'
            tests and tests/e2e check on todo-mcp's own tools.
            completion-complete: no completions capability (nothing to complete without prompts
            or resource templates).
            resources-list, resources-read-text, resources-read-binary, resources-templates-read,
            resources-subscribe, resources-unsubscribe, prompts-list, prompts-get-simple,
            prompts-get-with-args, prompts-get-embedded-resource, prompts-get-with-image: no
            resources or prompts.

Each test uses its own user id (the JWT `sub`, or `--user` over stdio), so no test sees another's
tasks. Stdio servers use a SQLite file per test; the HTTP server (one per session) uses a fresh
PostgreSQL database.

OAuth (test_ts_oauth.py): `hydra` is Ory Hydra on a database of its own (tests/common/hydra.py,
shared with tests/e2e), and `oauth` an HTTP server in identity-provider mode (TODO_AUTH_ISSUER,
TODO_RESOURCE_URL, no shared secret), started as tests/e2e's `oauth_server` is.

Environment: `TODO_MCP_BIN` (default `<repo>/target/debug/todo-mcp`), `TODO_TEST_DATABASE_URL`
(default: whatever `scripts/postgres.sh start` prints), `TODO_NODE` (a Node >= 22; default:
installed by `scripts/node.sh install`, which also runs `npm ci` in js/ when needed),
`TODO_HYDRA` (the Hydra binary; default: built or found by `scripts/hydra.sh build`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Test helpers shared with tests/e2e.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from hydra import Hydra, hydra_fixture, resource_server_env  # noqa: E402, F401 (hydra_fixture: the `hydra` fixture)
from net import free_port  # noqa: E402
from pg import fresh_database  # noqa: E402
from server import HttpServer, stop, tail  # noqa: E402

from nodeclients import JS, REPO, Node, mint_token, new_user  # noqa: E402
LOG_KEY = pytest.StashKey[list]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(120))


# --- server logs on failure ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _server_logs(request: pytest.FixtureRequest) -> list[tuple[str, Path]]:
    logs: list[tuple[str, Path]] = []
    request.node.stash[LOG_KEY] = logs
    return logs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, path in item.stash.get(LOG_KEY, []):
            report.sections.append((f"server log: {name} ({path})", tail(path)))


# --- Node and the clients -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    """Node >= 22 with js/node_modules installed (`scripts/node.sh install`: a no-op when cached)."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "node.sh"), "install"],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    paths = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    if out.returncode != 0 or "NODE" not in paths:
        pytest.fail(f"scripts/node.sh install failed (exit {out.returncode}):\n{out.stdout}{out.stderr}")
    home = tmp_path_factory.mktemp("node-home")
    return Node(node=paths["NODE"].strip(), home=home)


# --- the binary and the databases ---------------------------------------------------------------


@pytest.fixture(scope="session")
def binary() -> str:
    path = Path(os.environ.get("TODO_MCP_BIN") or REPO / "target" / "debug" / "todo-mcp")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"todo-mcp binary not found at {path}: build it with `cargo build -p mcp-server` "
            "or set TODO_MCP_BIN"
        )
    return str(path.resolve())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at its end."""
    with fresh_database("e2e_clients") as url:
        yield url


# --- the servers --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def http_server(binary: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    log = tmp_path_factory.mktemp("http") / "server.log"
    server = HttpServer(binary, database_url, log).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(http_server: HttpServer, _server_logs: list[tuple[str, Path]]) -> HttpServer:
    """The session's HTTP server; its log is shown when the test fails."""
    _server_logs.append(("http", http_server.log))
    return http_server


# --- an identity provider (`hydra`, tests/common/hydra.py), and the HTTP server that takes its
# tokens ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def oauth_server(
    binary: str, database_url: str, hydra: Hydra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpServer]:
    """`todo-mcp` taking Hydra's access tokens, on a port chosen first so that TODO_RESOURCE_URL
    can name it. It shares the session's database with `http_server`: users never overlap."""
    port = free_port()
    log = tmp_path_factory.mktemp("oauth") / "server.log"
    env = resource_server_env(hydra, port)
    server = HttpServer(binary, database_url, log, port=port, extra_env=env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oauth(oauth_server: HttpServer, hydra: Hydra, _server_logs: list[tuple[str, Path]]) -> HttpServer:
    """The server in identity-provider mode; its log and Hydra's are shown when the test fails."""
    _server_logs.extend([("oauth", oauth_server.log), ("hydra", hydra.log)])
    return oauth_server


@dataclass
class StdioServer:
    """How a client launches `todo-mcp` over stdio for one user on the test's own SQLite file."""

    binary: str
    user: str
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return [self.binary, "--user", self.user, "--database-url", f"sqlite://{self.tmp / 'todo.db'}"]


@pytest.fixture
def user() -> str:
    """This test's own user id."""
    return new_user()


@pytest.fixture
def token(user: str) -> str:
    return mint_token(user)


@pytest.fixture
def stdio(binary: str, user: str, tmp_path: Path) -> StdioServer:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "RUST_LOG": "info"}
    return StdioServer(binary=binary, user=user, tmp=tmp_path, env=env)


@pytest.fixture(scope="session")
def bearer_proxy(node: Node, http_server: HttpServer) -> Iterator[str]:
    """`js/bearer-proxy.mjs` in front of the HTTP server with a token of its own user: the MCP URL
    for clients that cannot send a header (the conformance suite)."""
    env = node.env(TODO_MCP_TOKEN=mint_token(new_user()))
    proc = subprocess.Popen(
        [node.node, str(JS / "bearer-proxy.mjs"), http_server.base],
        env=env,
        cwd=JS,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("PORT="), f"bearer-proxy printed {line!r} (exit {proc.poll()})"
        yield f"http://127.0.0.1:{line.split('=', 1)[1]}/mcp"
    finally:
        stop(proc)
