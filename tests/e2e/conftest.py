"""Fixtures for the end-to-end tests of the `todo-mcp` binary.

- `transport`: parametrized over stdio/HTTP x legacy (2025-11-25 handshake) / auto (2026-07-28)
  protocol modes, and the HTTP+SSE transport (`/sse`, handshake only). Stdio servers use one
  SQLite file for the session; the HTTP server (one per session, both HTTP transports) uses
  PostgreSQL. Each test gets its own user id, so tests never see each other's tasks.
- `http`: the running HTTP server (port, URL, log).
- `hydra`, `oauth`: Ory Hydra (tests/common/hydra.py), and an HTTP server that takes its access
  tokens instead of shared-secret ones (test_oauth.py).

Environment: `TODO_MCP_BIN` (default `<repo>/target/debug/todo-mcp`), `TODO_TEST_DATABASE_URL`
(default: whatever `scripts/postgres.sh start` prints).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


# Test helpers shared with tests/clients.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from hydra import Hydra, hydra_fixture, resource_server_env  # noqa: E402, F401 (hydra_fixture: the `hydra` fixture)
from net import free_port  # noqa: E402
from pg import fresh_database  # noqa: E402
from server import SERVER_LOG_LEVEL, HttpServer, tail  # noqa: E402
from support import PROTOCOL, REPO, mint_token, new_user  # noqa: E402

TRANSPORTS = ["stdio-legacy", "stdio-auto", "http-legacy", "http-auto", "sse-legacy"]
LOG_KEY = pytest.StashKey[list]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


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
            report.sections.append((f"server stderr: {name} ({path})", tail(path)))


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
    with fresh_database("e2e") as url:
        yield url


@pytest.fixture(scope="session")
def stdio_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One SQLite file (and a HOME without data) shared by all stdio servers of the session."""
    base = tmp_path_factory.mktemp("stdio")
    home = base / "home"
    home.mkdir()
    return {"db": base / "todo.db", "home": home, "logs": base / "logs"}


# --- the HTTP server ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def http_server(
    binary: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
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
    """`todo-mcp` taking Hydra's access tokens, with the issuer's keys used for 2 s before a
    refetch, so that a removed key is refused soon."""
    port = free_port()
    log = tmp_path_factory.mktemp("oauth") / "server.log"
    env = {**resource_server_env(hydra, port), "TODO_AUTH_JWKS_MAX_AGE_SECONDS": "2"}
    server = HttpServer(binary, database_url, log, extra_env=env, port=port).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oauth(oauth_server: HttpServer, hydra: Hydra, _server_logs: list[tuple[str, Path]]) -> HttpServer:
    """The server in identity-provider mode; its log and Hydra's are shown when the test fails."""
    _server_logs.extend([("oauth", oauth_server.log), ("hydra", hydra.log)])
    return oauth_server


# --- transports ---------------------------------------------------------------------------------


@dataclass
class Transport:
    """How a test reaches the server: `async with transport.connect() as client`."""

    kind: str  # "stdio" | "http" | "sse"
    mode: str  # "legacy" | "auto"
    binary: str
    user: str
    logs: list[tuple[str, Path]]
    stdio: dict[str, Path] | None = None
    http: HttpServer | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.mode}"

    @contextlib.asynccontextmanager
    async def connect(
        self,
        user: str | None = None,
        *,
        env: dict[str, str] | None = None,
        claims: dict[str, Any] | None = None,
        **client: Any,
    ) -> AsyncIterator[Client]:
        """A client of the server as `user`; over stdio with `env` added to the server's (its
        machine zone is UTC unless `env` sets `TZ`), over HTTP with `claims` added to the token.
        `client` goes to the SDK's `Client` (callbacks, handlers)."""
        user = user or self.user
        if self.kind == "stdio":
            assert self.stdio is not None
            self.stdio["logs"].mkdir(exist_ok=True)
            log = self.stdio["logs"] / f"{user}-{time.monotonic_ns()}.log"
            self.logs.append((f"stdio --user {user}", log))
            params = StdioServerParameters(
                command=self.binary,
                args=["--user", user, "--database-url", f"sqlite://{self.stdio['db']}"],
                env={
                    "HOME": str(self.stdio["home"]),
                    "XDG_DATA_HOME": str(self.stdio["home"] / "data"),
                    "RUST_LOG": SERVER_LOG_LEVEL,
                    "TZ": "UTC",
                    **(env or {}),
                },
            )
            with open(log, "w") as errlog:
                async with Client(stdio_client(params, errlog=errlog), mode=self.mode, **client) as c:
                    assert c.protocol_version == PROTOCOL[self.mode]
                    yield c
        elif self.kind == "sse":
            assert self.http is not None
            headers = {"Authorization": f"Bearer {mint_token(user, **(claims or {}))}"}
            async with Client(sse_client(f"{self.http.base}/sse", headers=headers), mode=self.mode, **client) as c:
                assert c.protocol_version == PROTOCOL[self.mode]
                yield c
        else:
            assert self.http is not None
            headers = {"Authorization": f"Bearer {mint_token(user, **(claims or {}))}"}
            async with create_mcp_http_client(headers=headers) as http_client:
                async with Client(
                    streamable_http_client(self.http.url, http_client=http_client),
                    mode=self.mode,
                    **client,
                ) as c:
                    assert c.protocol_version == PROTOCOL[self.mode]
                    yield c


@pytest.fixture(params=TRANSPORTS)
def transport(
    request: pytest.FixtureRequest,
    binary: str,
    _server_logs: list[tuple[str, Path]],
) -> Transport:
    kind, mode = request.param.split("-")
    t = Transport(kind=kind, mode=mode, binary=binary, user=new_user(), logs=_server_logs)
    if kind == "stdio":
        t.stdio = request.getfixturevalue("stdio_store")
    else:
        t.http = request.getfixturevalue("http")
    return t
