"""Helpers shared by the end-to-end tests: tokens, tool-call assertions, time values."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
from server import JWT_SECRET  # tests/common, on the path through conftest.py

REPO = Path(__file__).resolve().parents[2]

# Dates safely in the future (and `PAST` safely in the past) whatever the clock says.
Y = datetime.now(timezone.utc).year + 3
PAST = "2020-01-01T00:00:00Z"

TASK_KEYS = {
    "id",
    "owner",
    "title",
    "description",
    "status",
    "priority",
    "tags",
    "due",
    "time_zone",
    "recurrence",
    "reminders",
    "created_at",
    "updated_at",
    "completed_at",
    "version",
}

PROTOCOL = {"legacy": "2025-11-25", "auto": "2026-07-28"}

# Every tool the server lists.
TOOL_NAMES = frozenset(
    {
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
)


def new_user() -> str:
    return f"e2e-{uuid.uuid4()}"


# --- tokens -------------------------------------------------------------------------------------


def mint_token(
    sub: str | None,
    *,
    secret: str = JWT_SECRET,
    exp_in: int | None = 300,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """An HS256 bearer token for `sub`; `exp_in=None` leaves `exp` out, `sub=None` leaves `sub` out."""
    payload: dict[str, Any] = {"iat": int(time.time())}
    if sub is not None:
        payload["sub"] = sub
    if exp_in is not None:
        payload["exp"] = int(time.time()) + exp_in
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm)


def unsigned_token(sub: str) -> str:
    """A token with `alg: none` and no signature."""

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': sub, 'exp': int(time.time()) + 300})}."


# --- tool calls ---------------------------------------------------------------------------------


def _texts(result: Any) -> list[str]:
    return [getattr(block, "text", "") for block in result.content]


async def call_ok(client: Any, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured content.

    Also checks the text content: a human-readable summary first, and the structured content
    as JSON text for clients that only read text.
    """
    result = await client.call_tool(tool, args if args is not None else {})
    texts = _texts(result)
    assert not result.is_error, f"{tool}({args!r}) failed: {texts}"
    data = result.structured_content
    assert isinstance(data, dict), f"{tool} returned no structured content: {result!r}"
    assert texts and texts[0].strip(), f"{tool} returned no text summary: {result!r}"
    as_json = []
    for t in texts:
        try:
            as_json.append(json.loads(t))
        except ValueError:
            pass
    assert data in as_json, f"{tool}: no text block carries the structured content as JSON: {texts}"
    return data


async def call_err(client: Any, tool: str, args: dict[str, Any], *needles: str) -> str:
    """Calls a tool that must fail with `isError: true`; returns the message.

    Each needle must occur in the message (case-insensitively).
    """
    result = await client.call_tool(tool, args)
    texts = _texts(result)
    assert result.is_error, f"{tool}({args!r}) should have failed but returned {result.structured_content}"
    assert result.structured_content is None, result.structured_content
    message = " ".join(texts).strip()
    assert message, f"{tool}: error without a message"
    for needle in needles:
        assert needle.lower() in message.lower(), f"{tool}: {needle!r} not in error message {message!r}"
    return message


async def add(client: Any, title: str, **fields: Any) -> dict[str, Any]:
    task = (await call_ok(client, "add_task", {"title": title, **fields}))["task"]
    assert_task_shape(task)
    return task


async def get(client: Any, task_id: str) -> dict[str, Any]:
    return (await call_ok(client, "get_task", {"task_id": task_id}))["task"]


async def list_all(client: Any, **filters: Any) -> dict[str, Any]:
    return await call_ok(client, "list_tasks", {"status": "all", "limit": 200, **filters})


def ids(listing: dict[str, Any]) -> list[str]:
    return [t["id"] for t in listing["tasks"]]


def assert_task_shape(task: dict[str, Any]) -> None:
    assert set(task) == TASK_KEYS, set(task) ^ TASK_KEYS
    uuid.UUID(task["id"])
    for r in task["reminders"]:
        assert set(r) == {"id", "at", "minutes_before"}
        uuid.UUID(r["id"])
        parse_ts(r["at"])
    parse_ts(task["created_at"])
    parse_ts(task["updated_at"])
    assert isinstance(task["version"], int) and task["version"] >= 1, task["version"]


# --- times --------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_ts(s: str) -> datetime:
    """Parses an RFC 3339 timestamp with an offset (sub-microsecond digits dropped)."""
    assert isinstance(s, str), s
    value = datetime.fromisoformat(_FRACTION.sub(r"\1", s.replace("Z", "+00:00")))
    assert value.tzinfo is not None, f"{s} has no offset"
    return value


def same_instant(a: str, b: str) -> bool:
    return parse_ts(a) == parse_ts(b)


def without(task: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k not in keys}
