"""Each user's share of an HTTP server: a rate limit and a cap on requests in flight answered
with 429 and Retry-After, and quotas answered with tool errors a model can act on, all set by
the server's configuration. One user over a limit leaves every other user untouched."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import HttpServer
from support import add, call_err, mint_token, new_user

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
TOOLS_LIST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})


def list_tasks_call(limit: int = 100) -> str:
    params = {"name": "list_tasks", "arguments": {"limit": limit}}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})


def post(server: HttpServer, user: str, body: str = TOOLS_LIST) -> httpx2.Response:
    headers = {**HEADERS, "Authorization": f"Bearer {mint_token(user)}"}
    return httpx2.post(server.url, content=body, headers=headers, timeout=30)


@pytest.fixture
def server_with(binary: str, database_url: str, tmp_path: Path, _server_logs) -> Iterator:
    started: list[HttpServer] = []

    def start(**env: str) -> HttpServer:
        log = tmp_path / f"server-{len(started)}.log"
        _server_logs.append(("http", log))
        server = HttpServer(binary, database_url, log, extra_env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@asynccontextmanager
async def client(server: HttpServer, user: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {mint_token(user)}"}
    async with create_mcp_http_client(headers=headers) as http_client:
        async with Client(streamable_http_client(server.url, http_client=http_client)) as c:
            yield c


def test_a_user_over_the_rate_waits_or_gets_429_with_retry_after_and_others_do_not(server_with):
    server = server_with(TODO_RATE_LIMIT_PER_SECOND="1", TODO_RATE_LIMIT_BURST="3")
    alice, bob = new_user(), new_user()
    # The burst goes at once; the next waits up to a second for its turn; more are refused.
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(server, alice), range(8)))
    codes = sorted(r.status_code for r in answers)
    assert set(codes) == {200, 429}, codes
    assert 3 <= codes.count(200) <= 5, codes
    refused = [r for r in answers if r.status_code == 429]
    for r in refused:
        assert int(r.headers["retry-after"]) >= 1
        assert "too many requests" in r.text
    assert post(server, bob).status_code == 200, "another user's rate is their own"
    time.sleep(max(int(r.headers["retry-after"]) for r in refused))
    assert post(server, alice).status_code == 200, "admitted again after Retry-After"


def test_a_user_gets_a_share_of_requests_in_flight(server_with):
    server = server_with(TODO_REQUESTS_IN_FLIGHT_PER_USER="1", TODO_RATE_LIMIT_PER_SECOND="0")
    alice, bob = new_user(), new_user()
    # More than may run at once: each waits for its turn, up to a second, or gets a 429.
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post(server, alice, list_tasks_call()), range(48)))
        assert post(server, bob, list_tasks_call()).status_code == 200, "bob's share is his own"
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 429}, codes
    assert 200 in codes, codes
    for r in answers:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "1"
            assert "requests in progress" in r.text
    # Sequential requests are never refused.
    assert [post(server, alice, list_tasks_call()).status_code for _ in range(5)] == [200] * 5


async def test_quotas_are_tool_errors_a_model_can_act_on(server_with):
    server = server_with(
        TODO_TASKS_PER_USER="2", TODO_SERIES_PER_USER="1", TODO_MIN_RECURRENCE_MINUTES="30"
    )
    alice, bob = new_user(), new_user()
    async with client(server, alice) as c:
        await add(c, "Standup", due="2030-01-01T09:00:00Z", recurrence={"frequency": "daily"})
        await call_err(
            c, "add_task",
            {"title": "Gym", "due": "2030-01-01T18:00:00Z", "recurrence": {"frequency": "weekly"}},
            "1 recurring tasks", "recurrence null",
        )  # fmt: skip
        await call_err(
            c, "add_task",
            {"title": "Water", "due": "2030-01-01T09:00:00Z",
             "recurrence": {"frequency": "cron", "cron": "*/10 * * * *"}},
            "10 minute", "30 minutes",
        )  # fmt: skip
        await add(c, "Second")
        await call_err(c, "add_task", {"title": "Third"}, "2 tasks", "delete")
    async with client(server, bob) as c:
        await add(c, "Bob's own quota")
