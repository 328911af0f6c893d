"""APP_API_TOKEN: the app port only answers the sidecar, which presents the token."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime, timezone

import httpx2
import pytest

from dapr_support import (
    TOPIC_NOTIFICATIONS,
    Y,
    Proc,
    clean_env,
    free_port,
    new_user,
    notification_id,
    processed,
    reminder_triggered,
    tail,
    wait_until,
)

TOKEN = "t-" + uuid.uuid4().hex


def test_subscriptions_work_with_an_app_token_and_strangers_are_refused(groups, probe, infra):
    group = groups(
        "token",
        "mcp-token",
        daprd_env={"APP_API_TOKEN": TOKEN},
        server_env={"APP_API_TOKEN": TOKEN},
    )
    server = group.server
    # The sidecar read the subscriptions through the guarded app port.
    topics = {s["topic"] for s in group.daprd.subscriptions()}
    assert {"tasks", "notifications"} <= topics

    # An event reaches the server through its sidecar, which presents the token.
    user = new_user()
    mcp = server.client(user)
    task = mcp.add_task("Feed the cat", due=f"{Y}-04-01T08:00:00Z", time_zone="UTC")
    reminder_id = str(uuid.uuid4())
    fire_at = datetime(Y, 4, 1, 7, 45, tzinfo=timezone.utc)
    event = reminder_triggered(user, task, reminder_id, fire_at)
    probe.publish(TOPIC_NOTIFICATIONS, event)
    wait_until(
        lambda: processed(infra.pg, group.database_url, "mcp-server:notifications", [event["id"]]),
        30,
        "the server to process the reminder",
    )
    [n] = mcp.call("list_notifications", {})["notifications"]
    assert n["id"] == notification_id(reminder_id, fire_at)

    # Anyone else on the app port is refused.
    app = f"http://127.0.0.1:{server.app_port}"
    stranger = reminder_triggered(user, task, str(uuid.uuid4()), fire_at)
    body = json.dumps(stranger).encode()
    ce = {"Content-Type": "application/cloudevents+json"}
    with httpx2.Client(base_url=app, timeout=10) as http:
        assert http.post("/events/notifications", content=body, headers=ce).status_code == 401
        wrong = {**ce, "dapr-api-token": TOKEN + "x"}
        assert http.post("/events/notifications", content=body, headers=wrong).status_code == 401
        assert http.post("/events/recurring", content=body, headers=ce).status_code == 401
        assert http.get("/dapr/subscribe").status_code == 401
        # The right token is let in (as the sidecar is).
        right = {**ce, "dapr-api-token": TOKEN}
        r = http.post("/events/notifications", content=body, headers=right)
        assert r.status_code == 200 and r.json() == {"status": "SUCCESS"}, r.text
    # Only the admitted request had an effect.
    assert len(mcp.call("list_notifications", {})["notifications"]) == 2


def test_the_scheduler_answers_only_its_sidecar(schedulers, main_group, infra):
    group = schedulers(app_token=TOKEN)
    app, sidecar = group.app, group.members[0].daprd
    # The sidecar subscribed through the guarded port, and its job callbacks get through: a
    # reminder fires end to end.
    assert "tasks" in {s["topic"] for s in sidecar.subscriptions()}
    user = new_user()
    mcp = main_group.server.client(user)
    fire_at = datetime.fromtimestamp(int(datetime.now(timezone.utc).timestamp()) + 3, timezone.utc)
    task = mcp.add_task("Water the fern", reminders=[{"at": fire_at.isoformat()}])
    wait_until(
        lambda: mcp.call("list_notifications", {})["notifications"], 20, "the reminder to fire"
    )

    # Everyone else is refused on every Dapr route; the probes stay open.
    job = f"/job/reminder-{task['reminders'][0]['id']}"
    routes = [("GET", "/dapr/subscribe"), ("POST", "/events/tasks"), ("POST", job),
              ("POST", "/triggers/reminders"), ("OPTIONS", "/triggers/reminders"),
              ("POST", "/triggers/recurring")]  # fmt: skip
    event = json.dumps({"id": str(uuid.uuid4()), "type": "com.todo.task.deleted", "data": {}})
    with httpx2.Client(base_url=f"http://127.0.0.1:{app.app_port}", timeout=10) as http:
        for method, path in routes:
            for headers in ({}, {"dapr-api-token": TOKEN + "x"}, {"dapr-api-token": ""},
                            {"Authorization": f"Bearer {TOKEN}"}):  # fmt: skip
                # A refused request's body is left unread, so the server closes the connection
                # after answering: each goes on a connection of its own.
                headers = {**headers, "connection": "close"}
                r = http.request(method, path, content=event.encode(), headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code)
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        # With the token, the same requests are served (it is the token that decides).
        ok = http.request("GET", "/dapr/subscribe", headers={"dapr-api-token": TOKEN})
        assert ok.status_code == 200 and ok.json()[0]["topic"] == "tasks"
    assert TOKEN not in app.log.read_text(errors="replace"), "the token is never logged"


@pytest.mark.parametrize("service", ["todo-mcp", "todo-scheduler"])
def test_a_service_beside_a_sidecar_refuses_to_start_without_an_app_token(service, infra, tmp_path):
    """Without APP_API_TOKEN the app port would answer anyone: with a sidecar configured, each
    service stops at once with the reason, before it waits for the sidecar."""
    binary = infra.binary if service == "todo-mcp" else infra.scheduler_binary
    args = ["--events", "dapr"] if service == "todo-mcp" else []
    env = clean_env(DAPR_GRPC_PORT=str(free_port()))
    refused = subprocess.run(
        [binary, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    assert refused.returncode != 0
    assert "APP_API_TOKEN is not set" in refused.stderr, refused.stderr
    assert "--insecure-no-app-token" in refused.stderr

    # Only an explicit choice runs without it, and says so.
    log = tmp_path / f"{service}.log"
    insecure = Proc(service, [binary, *args], {**env, "TODO_INSECURE_NO_APP_TOKEN": "true"}, log)
    insecure.start()
    try:
        wait_until(
            lambda: "the app port answers anyone" in log.read_text(errors="replace"),
            15,
            "the warning that the app port is open",
        )
        assert insecure.alive(), tail(log)
    finally:
        insecure.stop()
