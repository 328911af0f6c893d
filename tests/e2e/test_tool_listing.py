"""tools/list: the tools with their titles, schemas and annotations, on every transport."""

from __future__ import annotations

import pytest

from support import TOOL_NAMES

pytestmark = pytest.mark.anyio

# (readOnly, destructive, idempotent, openWorld) as declared in mcp-server/src/mcp/tools.rs.
ANNOTATIONS = {
    "add_task": (False, False, False, False),
    "add_tasks": (False, False, False, False),
    "list_tasks": (True, None, None, False),
    "get_task": (True, None, None, False),
    "update_task": (False, False, True, False),
    "complete_task": (False, False, True, False),
    "reopen_task": (False, False, True, False),
    "delete_task": (False, True, True, False),
    "set_reminder": (False, False, False, False),
    "cancel_reminder": (False, True, True, False),
    "list_notifications": (False, False, True, False),
    "get_settings": (True, None, None, False),
    "update_settings": (False, False, True, False),
}

REQUIRED_ARGS = {
    "add_task": {"title"},
    "add_tasks": {"tasks"},
    "list_tasks": set(),
    "get_task": {"task_id"},
    "update_task": {"task_id"},
    # task_id, or task_ids for several: one of the two, which the schema cannot say.
    "complete_task": set(),
    "reopen_task": set(),
    "delete_task": set(),
    "set_reminder": {"task_id"},
    "cancel_reminder": {"task_id", "reminder_id"},
    "list_notifications": set(),
    "get_settings": set(),
    "update_settings": set(),
}

ARG_NAMES = {
    "add_task": {"title", "description", "priority", "tags", "due", "time_zone", "recurrence", "reminders"},
    "add_tasks": {"tasks"},
    "list_tasks": {
        "status", "priority", "tags", "search", "due_before", "due_after", "overdue",
        "time_zone", "sort", "order", "limit", "cursor",
    },
    "get_task": {"task_id"},
    "update_task": {"task_id", "title", "description", "priority", "tags", "due", "time_zone", "recurrence"},
    "complete_task": {"task_id", "task_ids"},
    "reopen_task": {"task_id", "task_ids"},
    "delete_task": {"task_id", "task_ids"},
    "set_reminder": {"task_id", "at", "minutes_before"},
    "cancel_reminder": {"task_id", "reminder_id"},
    "list_notifications": {"unread_only", "mark_read", "limit"},
    "get_settings": set(),
    "update_settings": {"time_zone"},
}

# The result of a batch (add_tasks, or task_ids): each item's outcome.
BATCH = {"results", "succeeded", "failed"}

OUTPUT_FIELDS = {
    "add_task": {"task"},
    "add_tasks": BATCH,
    "get_task": {"task"},
    "list_tasks": {"tasks", "total", "next_cursor"},
    "update_task": {"task", "changed"},
    "complete_task": {"task", "changed", "next_occurrence"} | BATCH,
    "reopen_task": {"task", "changed"} | BATCH,
    "cancel_reminder": {"task", "changed"},
    "delete_task": {"deleted"} | BATCH,
    "set_reminder": {"reminder_id", "task"},
    "list_notifications": {"notifications", "unread"},
    "get_settings": {"time_zone", "time_zone_source", "now"},
    "update_settings": {"time_zone", "time_zone_source", "now"},
}


async def test_lists_exactly_the_tools(transport):
    async with transport.connect() as c:
        assert c.server_info is not None and c.server_info.name == "todo-mcp"
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == set(ANNOTATIONS) == TOOL_NAMES
    for name, tool in tools.items():
        assert tool.title and tool.title.strip(), name
        assert tool.description and len(tool.description) > 20, name
        schema = tool.input_schema
        assert schema["type"] == "object", name
        assert set(schema.get("properties", {})) == ARG_NAMES[name], name
        assert set(schema.get("required", [])) == REQUIRED_ARGS[name], name
        # deny_unknown_fields is advertised, so clients know extra arguments are refused.
        assert schema.get("additionalProperties") is False, name
        out = tool.output_schema
        assert out is not None and out["type"] == "object", name
        assert set(out["properties"]) == OUTPUT_FIELDS[name], name
        a = tool.annotations
        assert a is not None, name
        got = (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        assert got == ANNOTATIONS[name], name


async def test_unknown_tool_is_a_protocol_error(transport):
    from mcp import MCPError

    async with transport.connect() as c:
        with pytest.raises(MCPError) as e:
            await c.call_tool("no_such_tool", {})
        assert e.value.error.code == -32602
        # The connection stays usable.
        assert len((await c.list_tools()).tools) == len(ANNOTATIONS)
