"""One reminder, one trace: the tool call that adds it, the scheduler arming it from the task
event, the firing, and the notification recorded by `todo-mcp`, exported over OTLP by both
services to a receiver built on the official OTLP protobuf definitions (`opentelemetry-proto`),
each span the child of the one before."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from dapr_support import new_user, wait_until


class OtlpReceiver:
    """An OTLP/HTTP trace receiver (protobuf encoding) keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        lock = threading.Lock()
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for resource in request.resource_spans:
                        attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
                        for scope in resource.scope_spans:
                            for span in scope.spans:
                                spans.append({
                                    "service": attributes.get("service.name"),
                                    "name": span.name,
                                    "trace": span.trace_id.hex(),
                                    "id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                })  # fmt: skip
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.mark.timeout(180)
def test_a_reminder_is_one_trace_from_the_tool_call_to_the_notification(groups, schedulers, otlp):
    # Spans are exported within a tenth of a second rather than the SDK's default 5 s.
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    schedulers(env=env)
    server = groups("traces", "mcp-traces", server_env=env).server
    mcp = server.client(new_user())
    fire_at = (datetime.now(timezone.utc) + timedelta(seconds=3)).replace(microsecond=0)
    mcp.add_task("traced reminder", reminders=[{"at": fire_at.isoformat()}])
    wait_until(
        lambda: mcp.call("list_notifications", {})["notifications"], 30, "the reminder fired"
    )

    steps = [
        ("todo-mcp", "tools/call add_task"),
        ("todo-scheduler", "consume com.todo.task.created"),
        ("todo-scheduler", "fire com.todo.reminder.triggered"),
        ("todo-mcp", "consume com.todo.reminder.triggered"),
    ]

    def chain() -> list[dict] | None:
        """The spans of `steps`, each the child of the one before, or None while incomplete."""
        found: list[dict] = []
        for service, name in steps:
            candidates = [
                s for s in list(otlp.spans)
                if s["service"] == service and s["name"] == name
                and (not found or (s["parent"] == found[-1]["id"] and s["trace"] == found[-1]["trace"]))
            ]  # fmt: skip
            if not candidates:
                return None
            found.append(candidates[0])
        return found

    wait_until(
        lambda: chain() is not None,
        15,
        "the four spans of the reminder, each the child of the one before",
        diagnose=lambda: "\n".join(
            f"{s['service']}: {s['name']} trace={s['trace']} id={s['id']} parent={s['parent']}"
            for s in otlp.spans
        ),
    )
    spans = chain()
    assert spans is not None
    assert spans[0]["parent"] == "", "the tool call starts a trace, apart from the MCP session's"
