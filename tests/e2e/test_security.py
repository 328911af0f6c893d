"""Security of the HTTP transport, attacked as an adversary would.

What `test_http.py` and `test_isolation.py` already check is not repeated; this file adds:

- forged, stale and misplaced bearer tokens (algorithm tricks, `kid`/`jku`/`jwk` headers, spliced
  signatures, odd subjects, the token anywhere but `Authorization: Bearer`, huge headers): each is
  a 401 with a challenge that echoes nothing, and the tool call it carried changed nothing;
- user B against user A over HTTP: every tool on A's ids answers exactly as for an id that does
  not exist (no existence oracle, even where A's task would make the call conflict), nothing of A's
  changes, and nothing leaks through search, replayed or forged `list_tasks` cursors, `_meta`, or
  notifications (A's reminder really fires while B looks);
- DNS rebinding: look-alike Host values, proxy headers, duplicate and malformed Origins, every
  method, and operator-configured allow-lists;
- secrets (the JWT secret, the database password) in no log line, response body, start-up
  error, or `--help` output, also while the database is unavailable.

Everything runs against the real binary and PostgreSQL. Requests are made with plain HTTP (or a
raw socket where httpx refuses to send the header under test) so that the exact bytes the server
returns can be searched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conftest import HttpServer
from pg import admin_database_url, psql
from support import JWT_SECRET, PAST, Y, mint_token, new_user

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
ACCEPT = "application/json, text/event-stream"


# --- plain HTTP helpers --------------------------------------------------------------------------


def rpc_body(method: str, params: dict[str, Any], id_: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}).encode()


def tool_body(tool: str, args: dict[str, Any], **params: Any) -> bytes:
    return rpc_body("tools/call", {"name": tool, "arguments": args, **params})


def jsonrpc_messages(text: str, content_type: str = "") -> list[dict[str, Any]]:
    if content_type.startswith("application/json"):
        return [json.loads(text)]
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


class Rpc:
    """One user's stateless MCP over HTTP: one POST per call, every raw response text kept."""

    def __init__(self, server: HttpServer, user: str, secret: str = JWT_SECRET, **headers: str) -> None:
        self.server = server
        self.user = user
        self.token = mint_token(user, secret=secret)
        self.headers = {"Content-Type": "application/json", "Accept": ACCEPT, "Authorization": f"Bearer {self.token}"}
        self.headers.update(headers)
        self.seen: list[str] = []  # every response text, for leak checks

    def post(self, body: bytes, **headers: str) -> httpx2.Response:
        r = httpx2.post(self.server.url, content=body, headers={**self.headers, **headers}, timeout=30)
        self.seen.append(r.text)
        return r

    def result(self, tool: str, args: dict[str, Any], **params: Any) -> dict[str, Any]:
        """The `result` of a tools/call, which must come back as HTTP 200 and no JSON-RPC error."""
        r = self.post(tool_body(tool, args, **params))
        assert r.status_code == 200, f"{tool}({args!r}): HTTP {r.status_code}: {r.text[:300]}"
        [message] = [m for m in jsonrpc_messages(r.text, r.headers.get("content-type", "")) if "id" in m]
        assert "result" in message, f"{tool}({args!r}): JSON-RPC error instead of a tool result: {message}"
        return message["result"]

    def ok(self, tool: str, args: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        result = self.result(tool, args or {}, **params)
        assert not result.get("isError"), f"{tool}({args!r}) failed: {result['content']}"
        return result["structuredContent"]

    def err(self, tool: str, args: dict[str, Any], *needles: str) -> str:
        result = self.result(tool, args)
        assert result.get("isError") is True, f"{tool}({args!r}) should fail: {result.get('structuredContent')}"
        assert "structuredContent" not in result or result["structuredContent"] is None
        message = " ".join(c.get("text", "") for c in result["content"]).strip()
        for needle in needles:
            assert needle.lower() in message.lower(), f"{tool}: {needle!r} not in {message!r}"
        return message

    def listing(self, **filters: Any) -> dict[str, Any]:
        return self.ok("list_tasks", {"status": "all", "limit": 200, **filters})

    def notifications(self, **args: Any) -> dict[str, Any]:
        return self.ok("list_notifications", {"limit": 200, **args})


def raw_http(
    port: int,
    header_lines: list[bytes],
    body: bytes = b"",
    *,
    method: str = "POST",
    target: str = "/mcp",
    host: bytes | None = b"127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request written byte for byte (for headers httpx will not send); returns the
    status, the response headers (lower-case names, first value) and the raw body."""
    lines = [f"{method} {target} HTTP/1.1".encode()]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += [
        b"Content-Type: application/json",
        b"Accept: " + ACCEPT.encode(),
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
        *header_lines,
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_raw = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for h in header_raw:
        name, _, value = h.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(status_line.split()[1]), headers, rest


# --- forged tokens -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def claims(sub: Any, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {"sub": sub, "iat": now, "exp": now + 300}
    out.update(extra)
    return {k: v for k, v in out.items() if v is not ...}


def forge(header: dict[str, Any], payload: dict[str, Any], key: bytes | None, digest: Any = hashlib.sha256) -> str:
    """A JWT with exactly this header and payload, HMAC-signed with `key` (random bytes as the
    signature when `key` is None)."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    sig = hmac.new(key, signing_input.encode(), digest).digest() if key is not None else secrets.token_bytes(256)
    return f"{signing_input}.{b64url(sig)}"


OUR_KEY = JWT_SECRET.encode()
EVIL_KEY = b"attacker-controlled-key-0123456789abcdef"
HS256 = {"alg": "HS256", "typ": "JWT"}


def splice(sub: str) -> str:
    """A genuine token's header and signature around a payload naming someone else."""
    header, _, sig = mint_token("someone-else").split(".")
    return f"{header}.{b64json(claims(sub))}.{sig}"


# name -> (sub) -> raw header lines of the request, and a query string for the URL
Cred = Callable[[str], tuple[list[bytes], str]]


def auth(value: str | bytes) -> list[bytes]:
    return [b"Authorization: " + (value if isinstance(value, bytes) else value.encode())]


def bearer(token: str) -> list[bytes]:
    return auth(f"Bearer {token}")


FORGED: dict[str, Cred] = {
    # Algorithm tricks.
    "alg-none": lambda s: (bearer(f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims(s))}."), ""),
    "alg-None": lambda s: (bearer(f"{b64json({'alg': 'None'})}.{b64json(claims(s))}."), ""),
    "alg-NONE-with-a-signature": lambda s: (bearer(forge({"alg": "NONE"}, claims(s), OUR_KEY)), ""),
    "alg-missing": lambda s: (bearer(forge({"typ": "JWT"}, claims(s), OUR_KEY)), ""),
    "hs384-with-our-secret": lambda s: (bearer(forge({"alg": "HS384"}, claims(s), OUR_KEY, hashlib.sha384)), ""),
    "rs256": lambda s: (bearer(forge({"alg": "RS256", "typ": "JWT"}, claims(s), None)), ""),
    "es256": lambda s: (bearer(forge({"alg": "ES256", "typ": "JWT"}, claims(s), None)), ""),
    "ps256": lambda s: (bearer(forge({"alg": "PS256", "typ": "JWT"}, claims(s), None)), ""),
    "eddsa": lambda s: (bearer(forge({"alg": "EdDSA", "typ": "JWT"}, claims(s), None)), ""),
    # Key-selection tricks, signed with the attacker's key.
    "kid-path-traversal": lambda s: (bearer(forge({**HS256, "kid": "../../../../dev/null"}, claims(s), b"")), ""),
    "kid-sql-injection": lambda s: (bearer(forge({**HS256, "kid": "x' UNION SELECT 'evil"}, claims(s), b"evil")), ""),
    "jku-attacker-jwks": lambda s: (bearer(forge({**HS256, "jku": "http://127.0.0.1:9/jwks.json"}, claims(s), EVIL_KEY)), ""),
    "x5u-attacker-cert": lambda s: (bearer(forge({**HS256, "x5u": "http://127.0.0.1:9/cert.pem"}, claims(s), EVIL_KEY)), ""),
    "embedded-jwk": lambda s: (
        bearer(forge({**HS256, "jwk": {"kty": "oct", "k": b64url(EVIL_KEY)}}, claims(s), EVIL_KEY)),
        "",
    ),
    "empty-key": lambda s: (bearer(forge(HS256, claims(s), b"")), ""),
    # Signatures that are not ours.
    "wrong-secret": lambda s: (bearer(forge(HS256, claims(s), EVIL_KEY)), ""),
    "signature-stripped": lambda s: (bearer(forge(HS256, claims(s), OUR_KEY).rsplit(".", 1)[0] + "."), ""),
    "signature-spliced-from-another-token": lambda s: (bearer(splice(s)), ""),
    "signature-truncated": lambda s: (bearer(forge(HS256, claims(s), OUR_KEY)[:-4]), ""),
    "four-segments": lambda s: (bearer(forge(HS256, claims(s), OUR_KEY) + ".extra"), ""),
    # Valid signature, bad claims (the server allows 30 s of clock skew).
    "expired-beyond-leeway": lambda s: (bearer(forge(HS256, claims(s, exp=int(time.time()) - 45), OUR_KEY)), ""),
    "nbf-beyond-leeway": lambda s: (bearer(forge(HS256, claims(s, nbf=int(time.time()) + 45), OUR_KEY)), ""),
    "exp-as-text": lambda s: (bearer(forge(HS256, claims(s, exp="tomorrow"), OUR_KEY)), ""),
    "exp-missing": lambda s: (bearer(forge(HS256, claims(s, exp=...), OUR_KEY)), ""),
    "sub-missing": lambda s: (bearer(forge(HS256, claims(..., user=s), OUR_KEY)), ""),
    "sub-empty": lambda s: (bearer(forge(HS256, claims(""), OUR_KEY)), ""),
    "sub-null": lambda s: (bearer(forge(HS256, claims(None), OUR_KEY)), ""),
    "sub-number": lambda s: (bearer(forge(HS256, claims(12345), OUR_KEY)), ""),
    "sub-list": lambda s: (bearer(forge(HS256, claims([s, "other"]), OUR_KEY)), ""),
    "sub-object": lambda s: (bearer(forge(HS256, claims({"id": s}), OUR_KEY)), ""),
    "sub-256-chars": lambda s: (bearer(forge(HS256, claims("u" * 256), OUR_KEY)), ""),
    "sub-control-character": lambda s: (bearer(forge(HS256, claims(s + "\u0000admin"), OUR_KEY)), ""),
    "payload-not-json": lambda s: (bearer(f"{b64json(HS256)}.{b64url(b'not json')}.{b64url(b'x' * 32)}"), ""),
    "header-not-json": lambda s: (bearer(f"{b64url(b'{')}.{b64json(claims(s))}.{b64url(b'x' * 32)}"), ""),
    # A good token in the wrong place, or not as `Authorization: Bearer <token>`.
    "x-authorization-header": lambda s: ([b"X-Authorization: Bearer " + mint_token(s).encode()], ""),
    "proxy-authorization-header": lambda s: ([b"Proxy-Authorization: Bearer " + mint_token(s).encode()], ""),
    "x-access-token-header": lambda s: ([b"X-Access-Token: " + mint_token(s).encode()], ""),
    "cookie": lambda s: ([b"Cookie: access_token=" + mint_token(s).encode()], ""),
    "query-access-token": lambda s: ([], f"?access_token={mint_token(s)}"),
    "query-token": lambda s: ([], f"?token={mint_token(s)}"),
    "scheme-token": lambda s: (auth(f"Token {mint_token(s)}"), ""),
    "scheme-jwt": lambda s: (auth(f"JWT {mint_token(s)}"), ""),
    "scheme-basic-with-jwt": lambda s: (auth("Basic " + b64url(f"{s}:{mint_token(s)}".encode())), ""),
    "scheme-bearer-colon": lambda s: (auth(f"Bearer:{mint_token(s)}"), ""),
    "bare-token": lambda s: (auth(mint_token(s)), ""),
    "bearer-without-token": lambda s: (auth("Bearer"), ""),
    "bearer-and-a-space": lambda s: (auth("Bearer "), ""),
    "bearer-tab-token": lambda s: (auth(f"Bearer\t{mint_token(s)}"), ""),
    "token-then-junk": lambda s: (bearer(f"{mint_token(s)} junk"), ""),
    "empty-authorization": lambda s: (auth(""), ""),
    "non-ascii-header": lambda s: (auth("Bearer ".encode() + "é".encode("latin-1") + mint_token(s).encode()), ""),
    "huge-garbage-token": lambda s: (bearer("A" * 60_000), ""),
    "huge-forged-token": lambda s: (bearer(forge(HS256, claims(s, pad="x" * 40_000), EVIL_KEY)), ""),
}


@pytest.fixture(scope="module")
def victim_check(http_server: HttpServer) -> Callable[[str], None]:
    """Asserts (with a valid token) that `user` owns nothing and has no notifications."""

    def check(user: str) -> None:
        rpc = Rpc(http_server, user)
        assert rpc.listing()["total"] == 0, f"a refused request created something for {user}"
        assert rpc.notifications()["notifications"] == []

    return check


@pytest.mark.parametrize("case", list(FORGED))
def test_forged_and_misplaced_tokens_get_401_and_change_nothing(http, victim_check, case):
    user = new_user()
    lines, query = FORGED[case](user)
    body = tool_body("add_task", {"title": f"planted by {case}"})
    status, headers, raw = raw_http(http.port, lines, body, target=f"/mcp{query}")
    text = raw.decode(errors="replace")
    assert status == 401, f"{case}: HTTP {status}: {text[:300]}"
    challenge = headers.get("www-authenticate", "")
    assert challenge.startswith('Bearer realm="todo-mcp"'), challenge
    assert "jsonrpc" not in text and "planted" not in text
    # Nothing presented comes back: neither the token nor any part of it, nor the secret.
    presented = b"".join(lines).decode("latin-1") + query
    for fragment in re.findall(r"[A-Za-z0-9_-]{16,}", presented):
        assert fragment not in text and fragment not in challenge, f"{case}: the response echoes {fragment[:20]}…"
    assert JWT_SECRET not in text
    victim_check(user)


def test_two_authorization_headers_are_refused_as_ambiguous(http, victim_check):
    user = new_user()
    for lines in (bearer("garbage") + bearer(mint_token(user)), bearer(mint_token(user)) * 2):
        status, _, raw = raw_http(http.port, lines, tool_body("add_task", {"title": "planted"}))
        assert status == 400 and b"more than one authorization header" in raw, (status, raw[:200])
    victim_check(user)


def test_a_header_too_large_for_the_server_is_refused_without_5xx(http, victim_check):
    user = new_user()
    for lines in (bearer(mint_token(user) + "A" * 1_000_000), [b"X-Padding: " + b"p" * 1_000_000] + bearer(mint_token(user))):
        status, _, raw = raw_http(http.port, lines, tool_body("add_task", {"title": "planted"}))
        assert status in (400, 401, 431), f"HTTP {status}: {raw[:200]!r}"
    assert httpx2.get(f"{http.base}/healthz", timeout=5).status_code == 200
    victim_check(user)


def test_token_checks_allow_only_the_documented_clock_skew(http):
    """`exp` and `nbf` have 30 s of leeway, no more (the cases past it are in FORGED)."""
    user = new_user()
    now = int(time.time())
    for payload in (claims(user, exp=now - 5), claims(user, nbf=now + 5)):
        status, _, raw = raw_http(http.port, bearer(forge(HS256, payload, OUR_KEY)), rpc_body("tools/list", {}))
        assert status == 200, raw[:200]
    for payload in (claims(user, exp=now - 90), claims(user, nbf=now + 90)):
        status, headers, _ = raw_http(http.port, bearer(forge(HS256, payload, OUR_KEY)), rpc_body("tools/list", {}))
        assert status == 401 and "invalid_token" in headers["www-authenticate"]


def test_subjects_are_matched_exactly_and_never_as_patterns(http):
    """Users whose names differ only in case, or are SQL wildcards or injections, are strangers."""
    alice = Rpc(http, f"CaseUser-{uuid.uuid4().hex[:8]}")
    mine = alice.ok("add_task", {"title": "case-sensitive secret", "tags": ["mine"]})["task"]
    others = [
        alice.user.lower(),
        alice.user.upper(),
        "%",
        "_",
        "*",
        ".*",
        f"{alice.user[:-1]}%",
        f"{alice.user[:-1]}_",
        "' OR '1'='1",
        f"{alice.user}' --",
        f"{alice.user}\\",
    ]
    for name in others:
        stranger = Rpc(http, name)
        for filters in ({}, {"search": "case-sensitive"}, {"tags": ["mine"]}):
            listing = stranger.listing(**filters)
            assert listing["total"] == 0 and listing["tasks"] == [], (name, filters, listing)
            assert mine["id"] not in stranger.seen[-1]
        stranger.err("get_task", {"task_id": mine["id"]}, "not found")
        stranger.err("delete_task", {"task_id": mine["id"]}, "not found")
    assert [t["id"] for t in alice.listing()["tasks"]] == [mine["id"]]


# --- user B against user A ------------------------------------------------------------------------


def normalised(message: str) -> str:
    return UUID_RE.sub("<id>", message)


def future(minutes: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


@pytest.fixture
def alice_and_bob(http) -> Iterator[tuple[Rpc, Rpc, dict[str, Any]]]:
    """Alice with three tasks that make many calls conflict (a recurring one, a completed one
    without a due date, one with ten reminders); Bob with one task of his own."""
    alice, bob = Rpc(http, new_user()), Rpc(http, new_user())
    word = f"quokka{uuid.uuid4().hex[:8]}"
    recurring = alice.ok(
        "add_task",
        {
            "title": f"Alice {word} recurring",
            "description": f"private {word} notes",
            "due": f"{Y}-03-01T09:00:00Z",
            "time_zone": "Europe/Paris",
            "tags": [word, "private"],
            "priority": "high",
            "recurrence": {"frequency": "daily"},
            "reminders": [{"minutes_before": 30}, {"at": f"{Y}-02-28T08:00:00Z"}],
        },
    )["task"]
    done = alice.ok("add_task", {"title": f"Alice {word} done", "tags": [word]})["task"]
    alice.ok("complete_task", {"task_id": done["id"]})
    full = alice.ok(
        "add_task",
        {"title": f"Alice {word} full", "reminders": [{"at": f"{Y}-04-{d:02d}T08:00:00Z"} for d in range(1, 11)]},
    )["task"]
    own = bob.ok("add_task", {"title": "Bob's own", "due": f"{Y}-05-01T00:00:00Z", "tags": ["private"]})["task"]
    done = alice.ok("get_task", {"task_id": done["id"]})["task"]
    yield alice, bob, {"recurring": recurring, "done": done, "full": full, "own": own, "word": word}


def test_every_tool_on_anothers_ids_answers_as_for_a_missing_id(alice_and_bob):
    """Each call Bob makes on Alice's ids fails with exactly the message (ids aside) the same call
    gets for ids that exist nowhere, including calls that would conflict with Alice's task if
    Bob could see it. Alice's tasks and notifications are unchanged, and none of Bob's responses
    mentions her ids or words."""
    alice, bob, t = alice_and_bob
    word = t["word"]
    rec, done, full, own = t["recurring"], t["done"], t["full"], t["own"]
    a_reminder = rec["reminders"][0]["id"]
    before = alice.listing()
    alice_notes = alice.notifications()

    calls: list[tuple[str, dict[str, Any]]] = []
    for task in (rec, done, full):
        tid = task["id"]
        calls += [
            ("get_task", {"task_id": tid}),
            ("update_task", {"task_id": tid}),
            ("update_task", {"task_id": tid, "title": "pwned"}),
            ("update_task", {"task_id": tid, "title": "pwned", "description": None, "priority": "low",
                             "tags": ["pwned"], "due": f"{Y}-06-01T00:00:00Z", "time_zone": "UTC",
                             "recurrence": None}),  # fmt: skip
            ("update_task", {"task_id": tid, "due": None}),  # conflicts with the recurring task
            ("update_task", {"task_id": tid, "recurrence": {"frequency": "weekly"}}),  # no due on `done`
            ("complete_task", {"task_id": tid}),
            ("reopen_task", {"task_id": tid}),  # `rec` is not completed
            ("set_reminder", {"task_id": tid, "minutes_before": 5}),  # `done` has no due
            ("set_reminder", {"task_id": tid, "at": f"{Y}-01-01T00:00:00Z"}),  # `full` has 10 already
            ("cancel_reminder", {"task_id": tid, "reminder_id": a_reminder}),
            ("cancel_reminder", {"task_id": tid, "reminder_id": str(uuid.uuid4())}),
            ("delete_task", {"task_id": tid}),
        ]
    # Alice's reminder through Bob's own task.
    calls.append(("cancel_reminder", {"task_id": own["id"], "reminder_id": a_reminder}))

    alice_ids = {rec["id"], done["id"], full["id"], *(r["id"] for r in rec["reminders"] + full["reminders"])}
    for tool, args in calls:
        message = bob.err(tool, args, "not found")
        # The same call on ids that exist for nobody.
        twin = {k: (str(uuid.uuid4()) if isinstance(v, str) and v in alice_ids else v) for k, v in args.items()}
        assert normalised(message) == normalised(bob.err(tool, twin)), (tool, args)

    # Creating things that point at Alice's ids is refused as an unknown field, and creates nothing.
    for args, field in (
        ({"title": "x", "id": rec["id"]}, "id"),
        ({"title": "x", "task_id": rec["id"]}, "task_id"),
        ({"title": "x", "owner": alice.user}, "owner"),
        ({"title": "x", "due": f"{Y}-01-01T00:00:00Z",
          "recurrence": {"frequency": "daily", "series_id": rec["recurrence"]["series_id"]}}, "series_id"),  # fmt: skip
        ({"title": "x", "reminders": [{"id": a_reminder, "at": f"{Y}-01-01T00:00:00Z"}]}, "id"),
    ):
        bob.err("add_task", args, field)
    bob.err("update_task", {"task_id": own["id"], "owner": alice.user}, "owner")
    bob.err("list_tasks", {"owner": alice.user}, "owner")
    bob.err("list_notifications", {"owner": alice.user}, "owner")

    # `_meta` on the request cannot switch users either.
    meta = {"_meta": {"user": alice.user, "sub": alice.user, "owner": alice.user}}
    assert [x["id"] for x in bob.ok("list_tasks", {"status": "all"}, **meta)["tasks"]] == [own["id"]]

    # Bob's view: only his task, under every filter that would match Alice's.
    for filters in ({}, {"search": word}, {"search": "Alice"}, {"tags": [word]}, {"tags": ["private"]},
                    {"status": "completed"}, {"priority": "high"}, {"due_after": f"{Y}-01-01"},
                    {"sort": "title"}, {"sort": "due"}, {"sort": "priority"}):  # fmt: skip
        listing = bob.listing(**filters)
        assert {x["id"] for x in listing["tasks"]} <= {own["id"]}, filters
        assert listing["total"] == len(listing["tasks"]), filters
    assert bob.listing(search=word)["total"] == 0
    assert bob.notifications()["notifications"] == []

    # Nothing of Alice's changed; nothing of hers appears in anything Bob received.
    after = alice.listing()
    assert after == before
    for task in (rec, done, full):
        assert alice.ok("get_task", {"task_id": task["id"]})["task"] == next(x for x in before["tasks"] if x["id"] == task["id"])
    assert alice.notifications() == alice_notes
    for text in bob.seen:
        assert word not in text and alice.user not in text
        leaked = alice_ids & set(UUID_RE.findall(text))
        # An id Bob himself sent may be quoted back in the "not found" message; nothing else.
        assert all(f"{i} not found" in text or f"reminder {i} not found" in text for i in leaked), leaked
    assert [x["id"] for x in bob.listing()["tasks"]] == [own["id"]]


def _decode_cursor(cursor: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _encode_cursor(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


def test_cursors_replayed_or_forged_by_another_user_show_only_their_own_tasks(alice_and_bob):
    alice, bob, t = alice_and_bob
    word = t["word"]
    own = t["own"]
    for n in range(4):
        alice.ok("add_task", {"title": f"Alice {word} page {n}", "due": f"{Y}-07-0{n + 1}T00:00:00Z", "tags": [word]})
    alice_ids = {x["id"] for x in alice.listing()["tasks"]}
    assert len(alice_ids) == 7

    queries = [
        {"status": "all"},
        {"status": "all", "sort": "title"},
        {"status": "all", "sort": "due", "order": "desc"},
        {"status": "all", "sort": "priority"},
        {"status": "all", "search": word},
        {"status": "all", "tags": [word]},
    ]
    for query in queries:
        cursors = []
        page = alice.ok("list_tasks", {**query, "limit": 2})
        while page["next_cursor"]:
            cursors.append(page["next_cursor"])
            page = alice.ok("list_tasks", {**query, "limit": 2, "cursor": page["next_cursor"]})
        assert cursors, query
        for cursor in cursors:
            result = bob.result("list_tasks", {**query, "limit": 2, "cursor": cursor})
            if result.get("isError"):
                assert "cursor" in result["content"][0]["text"], result
                continue
            got = result["structuredContent"]
            assert {x["id"] for x in got["tasks"]} <= {own["id"]}, (query, got)
            assert got["total"] <= 1

    # A cursor Bob forges from his own, positioned at Alice's tasks, still lists only his.
    bob.ok("add_task", {"title": "Bob second", "tags": ["private"]})
    for query in queries[:4]:
        genuine = bob.ok("list_tasks", {**query, "limit": 1})["next_cursor"]
        assert genuine, query
        fields = _decode_cursor(genuine)
        for victim in alice_ids:
            forged = _encode_cursor({**fields, "i": victim})
            got = bob.ok("list_tasks", {**query, "limit": 200, "cursor": forged})
            assert all(x["owner"] == bob.user for x in got["tasks"]), got
        # Keys of the wrong type or carrying SQL are an argument error or just a position.
        for key in ("' OR 1=1 --", {"$gt": ""}, [1, 2], 1e308, -(2**63), True, None, "9" * 400):
            result = bob.result("list_tasks", {**query, "limit": 200, "cursor": _encode_cursor({**fields, "k": key})})
            if result.get("isError"):
                assert "cursor" in result["content"][0]["text"].lower(), result
            else:
                assert all(x["owner"] == bob.user for x in result["structuredContent"]["tasks"])
    assert all(i not in text for text in bob.seen for i in alice_ids)
    assert all(word not in text for text in bob.seen)


def test_notifications_stay_with_their_owner(alice_and_bob, http):
    """Alice's reminder really fires (the embedded scheduler of a server without a sidecar);
    Bob, whose own reminder fires at the same second, sees only his, marking his read leaves
    hers unread, and nothing of hers appears in his responses."""
    alice, bob, t = alice_and_bob
    at = (datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)).isoformat()
    a_task = alice.ok("add_task", {"title": f"Alice {t['word']} ping", "reminders": [{"at": at}]})["task"]
    b_task = bob.ok("add_task", {"title": "Bob ping", "reminders": [{"at": at}]})["task"]

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        a_notes, b_notes = alice.notifications(), bob.notifications()
        if a_notes["notifications"] and b_notes["notifications"]:
            break
        time.sleep(0.2)
    assert a_notes["notifications"] and b_notes["notifications"], f"no notifications 15 s after {at}"
    [a_note] = a_notes["notifications"]
    assert (a_note["task_id"], a_note["reminder_id"]) == (a_task["id"], a_task["reminders"][0]["id"])
    assert a_notes["unread"] == 1

    bob.seen.clear()
    for args in ({}, {"unread_only": True}, {"mark_read": True}, {"unread_only": False, "limit": 1}):
        notes = bob.notifications(**args)["notifications"]
        assert [n["task_id"] for n in notes] == [b_task["id"]], (args, notes)
    assert bob.notifications()["unread"] == 0
    assert bob.notifications(unread_only=True)["notifications"] == []
    for text in bob.seen:
        for secret in (a_task["id"], a_note["id"], a_note["reminder_id"], t["word"], alice.user):
            assert secret not in text

    still = alice.notifications(unread_only=True)
    assert still["unread"] == 1 and [n["id"] for n in still["notifications"]] == [a_note["id"]]
    assert still["notifications"][0]["read"] is False


# --- DNS rebinding ---------------------------------------------------------------------------------

LOOKALIKE_HOSTS = [
    b"evil.example",
    b"localhost.evil.example",
    b"127.0.0.1.nip.io",
    b"localtest.me",
    b"localhost@evil.example",
    b"evil.example#localhost",
    b"localhost.",
    b"127.1",
    b"0.0.0.0",
    b"2130706433",
    b"0x7f000001",
    b"[::ffff:127.0.0.1]",
    b"[::]",
]


def _tools_list_status(port: int, lines: list[bytes], host: bytes | None, method: str = "POST") -> tuple[int, bytes]:
    body = rpc_body("tools/list", {}) if method == "POST" else b""
    status, _, raw = raw_http(port, lines, body, method=method, host=host)
    return status, raw


@pytest.mark.parametrize("host", LOOKALIKE_HOSTS, ids=lambda h: h.decode())
def test_lookalike_hosts_are_refused_with_a_valid_token(http, host, victim_check):
    user = new_user()
    token = bearer(mint_token(user))
    status, raw = _tools_list_status(http.port, token, host)
    assert status in (400, 403, 421), (status, raw[:200])
    assert b"jsonrpc" not in raw
    status, _, raw = raw_http(http.port, token, tool_body("add_task", {"title": "rebound"}), host=host)
    assert status in (400, 403, 421) and b"jsonrpc" not in raw
    for method in ("GET", "DELETE"):
        status, raw = _tools_list_status(http.port, token, host, method)
        assert status in (400, 403, 421), (method, status, raw[:200])
    victim_check(user)


def test_proxy_headers_and_duplicates_do_not_bypass_the_host_check(http, victim_check):
    user = new_user()
    token = bearer(mint_token(user))
    refused = [
        # A proxy header naming an allowed host does not launder a foreign Host.
        (b"evil.example", [b"X-Forwarded-Host: localhost", b"Forwarded: host=localhost"]),
        (b"evil.example", [b"X-Original-Host: 127.0.0.1", b"X-Host: localhost"]),
        # Two Host headers, the foreign one first.
        (b"evil.example", [b"Host: localhost"]),
        # An allowed Host does not launder a foreign Origin, first of two.
        (b"localhost", [b"Origin: http://evil.example", f"Origin: http://localhost:{http.port}".encode()]),
    ]
    for host, extra in refused:
        status, raw = _tools_list_status(http.port, token + extra, host)
        assert status in (400, 403, 421), (host, extra, status, raw[:200])
        status, _, raw = raw_http(http.port, token + extra, tool_body("add_task", {"title": "rebound"}), host=host)
        assert status in (400, 403, 421), (host, extra, status)
    # Two Host headers, even the allowed one first, are ambiguous: refused as a bad request.
    status, raw = _tools_list_status(http.port, token + [b"Host: evil.example"], b"localhost")
    assert status == 400 and b"more than one host header" in raw, (status, raw[:200])
    # No Host at all, or an empty one: a client error, never served.
    for host in (None, b""):
        status, raw = _tools_list_status(http.port, token, host)
        assert 400 <= status < 500 and b"jsonrpc" not in raw, (host, status)
    # Without a token a rebound request is refused too (by the token check or the Host check).
    status, raw = _tools_list_status(http.port, [], b"evil.example")
    assert status in (401, 403) and b"jsonrpc" not in raw
    victim_check(user)


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "https://localhost:{port}",  # right host, wrong scheme
        "http://localhost:{port}@evil.example",
        "http://localhost.:{port}",
        "http://127.0.0.1.nip.io:{port}",
        "http://evil.example/http://localhost:{port}",
        "file://",
        "chrome-extension://abcdefghijklmnop",
        "",
    ],
)
def test_foreign_origins_are_refused_with_a_valid_token(http, origin, victim_check):
    user = new_user()
    lines = bearer(mint_token(user)) + [f"Origin: {origin.format(port=http.port)}".encode()]
    status, raw = _tools_list_status(http.port, lines, b"localhost")
    assert status == 403, (status, raw[:200])
    status, _, raw = raw_http(http.port, lines, tool_body("add_task", {"title": "rebound"}), host=b"localhost")
    assert status == 403 and b"jsonrpc" not in raw
    victim_check(user)


# --- a server configured like a deployment: own secrets, own allow-lists ---------------------------


class Hardened:
    def __init__(self, server: HttpServer, secret: str, password: str, db: str, admin: str, psql: str) -> None:
        self.server = server
        self.secret = secret
        self.password = password
        self.db = db
        self.admin = admin
        self.psql = psql
        self.responses: list[str] = []

    def sql(self, statement: str) -> str:
        out = subprocess.run([self.psql, "-d", self.admin, "-v", "ON_ERROR_STOP=1", "-Atqc", statement],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, f"psql {statement!r}: {out.stderr}"
        return out.stdout

    def rpc(self, user: str | None = None, secret: str | None = None) -> Rpc:
        return Rpc(self.server, user or new_user(), secret or self.secret, Host="todo.example.test")

    def needles(self) -> list[str]:
        """The secrets, and their random cores (to catch truncated or re-encoded leaks)."""
        return [self.secret, self.password, self.secret[-24:], self.password[-24:]]


@pytest.fixture(scope="module")
def hardened(binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hardened]:
    """An HTTP server with a distinctive JWT secret, a database role with a distinctive password,
    allow-lists set for a deployment at todo.example.test, and every log level on."""
    admin, psql_bin = admin_database_url(), psql()
    tag = uuid.uuid4().hex[:12]
    role, db = f"sec_role_{tag}", f"sec_db_{tag}"
    password = f"pgpw-{secrets.token_hex(16)}"
    secret = f"jwt-{secrets.token_hex(24)}"
    h = Hardened(None, secret, password, db, admin, psql_bin)  # type: ignore[arg-type]
    h.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        h.sql(f"CREATE DATABASE {db} OWNER {role}")
        host_port = admin.split("@", 1)[1].split("/", 1)[0]
        url = f"postgres://{role}:{password}@{host_port}/{db}"
        log = tmp_path_factory.mktemp("hardened") / "server.log"
        h.server = HttpServer(
            binary,
            url,
            log,
            extra_env={
                "TODO_JWT_SECRET": secret,
                "TODO_ALLOWED_HOSTS": "todo.example.test",
                "TODO_ALLOWED_ORIGINS": "https://app.example.test",
                "RUST_LOG": "trace",
            },
        ).start()
        try:
            yield h
        finally:
            h.server.stop()
    finally:
        h.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        h.sql(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def hardened_logs(hardened: Hardened, _server_logs: list[tuple[str, Path]]) -> Hardened:
    _server_logs.append(("hardened http", hardened.server.log))
    return hardened


@pytest.mark.parametrize(
    ("host", "origin", "served"),
    [
        ("todo.example.test", None, True),
        ("todo.example.test:8443", None, True),  # a name without a port matches any port
        ("TODO.EXAMPLE.TEST", None, True),
        ("todo.example.test", "https://app.example.test", True),
        ("todo.example.test", "https://app.example.test:443", True),
        ("localhost", None, False),  # the defaults are replaced, not extended
        ("127.0.0.1:{port}", None, False),
        ("evil.todo.example.test", None, False),
        ("todo.example.test.evil", None, False),
        ("todo.example.test", "http://app.example.test", False),
        ("todo.example.test", "https://app.example.test.evil", False),
        ("todo.example.test", "https://evil.app.example.test", False),
        ("todo.example.test", "http://localhost:{port}", False),
    ],
)
def test_configured_allow_lists_replace_the_defaults(hardened_logs, host, origin, served):
    h = hardened_logs
    port = h.server.port
    rpc = h.rpc()
    headers = {"Host": host.format(port=port)}
    if origin:
        headers["Origin"] = origin.format(port=port)
    r = rpc.post(tool_body("add_task", {"title": "via allow-list"}), **headers)
    if served:
        assert r.status_code == 200, r.text[:300]
        assert "via allow-list" in r.text
    else:
        assert r.status_code == 403, r.text[:300]
        assert "jsonrpc" not in r.text
    assert rpc.listing()["total"] == (1 if served else 0)


def test_secrets_stay_out_of_logs_and_responses_even_while_the_database_is_down(hardened_logs):
    """Errors of every kind are provoked on a server logging at trace level, the database is made
    unavailable under it (and brought back); neither the JWT secret nor the database password
    appears in any response or in the log, and neither do the bearer tokens presented."""
    h = hardened_logs
    port = h.server.port
    user = h.rpc()
    responses: list[str] = []
    task = user.ok("add_task", {"title": "before the outage", "reminders": [{"at": future(60)}]})["task"]

    # Refused tokens, including ones signed with the secret's look-alikes.
    refused = [
        # The secret with its last character changed (its hex digits are random: not to "0" when
        # it is "0" already, or the token would be valid).
        mint_token("x", secret=h.secret[:-1] + ("1" if h.secret.endswith("0") else "0")),
        mint_token("x", secret=h.secret, exp_in=-600),
        forge(HS256, claims("x"), h.secret.encode() + b"\n"),
        "not-a-token",
    ]
    for token in refused:
        r = httpx2.post(f"{h.server.base}/mcp", content=rpc_body("tools/list", {}),
                        headers={"Authorization": f"Bearer {token}", "Host": "todo.example.test",
                                 "Accept": ACCEPT, "Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 401
        responses.append(r.text + json.dumps(dict(r.headers)))
    # Refused Host and Origin.
    responses.append(user.post(rpc_body("tools/list", {}), Host="evil.example").text)
    responses.append(user.post(rpc_body("tools/list", {}), Origin="http://evil.example").text)
    # Tool errors and protocol errors.
    user.err("get_task", {"task_id": str(uuid.uuid4())}, "not found")
    user.err("add_task", {"title": ""}, "title")
    user.err("add_task", {"title": "x", "reminders": [{"at": PAST}]}, "past")
    user.err("list_tasks", {"cursor": "forged!"}, "cursor")
    user.err("update_task", {"task_id": "' OR 1=1 --"}, "UUID")
    for body in (b"{not json", rpc_body("no/such/method", {}), tool_body("no_such_tool", {}),
                 json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "x"}).encode()):  # fmt: skip
        r = user.post(body)
        assert r.status_code < 500, (body, r.status_code, r.text[:300])

    # The database goes away under the server: no new connections, the open ones cut.
    h.sql(f"ALTER DATABASE {h.db} ALLOW_CONNECTIONS false")
    try:
        h.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{h.db}'")
        # Termination is a signal: a backend may finish what it was doing first.
        cut = time.monotonic() + 10
        while not user.result("list_tasks", {}).get("isError") and time.monotonic() < cut:
            time.sleep(0.05)
        for tool, args in (("list_tasks", {}), ("add_task", {"title": "during the outage"}),
                           ("get_task", {"task_id": task["id"]}), ("list_notifications", {})):  # fmt: skip
            message = user.err(tool, args)
            assert "unavailable" in message and "retry" in message, message
        ready = httpx2.get(f"{h.server.base}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable", ready.text
        responses.append(ready.text)
        time.sleep(0.6)  # a round of the outbox relay and the scheduler fails meanwhile
    finally:
        h.sql(f"ALTER DATABASE {h.db} ALLOW_CONNECTIONS true")
    deadline = time.monotonic() + 15
    while True:
        result = user.result("list_tasks", {"status": "all"})
        if not result.get("isError") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not result.get("isError"), result
    assert [x["title"] for x in result["structuredContent"]["tasks"]] == ["before the outage"]
    assert httpx2.get(f"{h.server.base}/readyz", timeout=10).status_code == 200

    log = h.server.log.read_text(errors="replace")
    # The log did record the failures that were provoked (so it is the right log to search).
    assert "readiness check failed" in log and "tool call failed" in log, log[-2000:]
    assert "rejected an unauthenticated request" in log
    for needle in h.needles():
        assert needle not in log, "a secret is in the server log"
        for text in responses + user.seen:
            assert needle not in text, "a secret is in a response"
    # Bearer tokens are credentials too: no part of one presented is logged.
    for token in [user.token, *refused]:
        for part in token.split("."):
            if len(part) >= 16:
                assert part not in log, "a bearer token is in the server log"


def _server_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TODO_", "DAPR_")) and k not in ("DATABASE_URL", "RUST_LOG", "APP_API_TOKEN")
    }
    env.update(TODO_TRANSPORT="http", TODO_LISTEN="127.0.0.1:0", RUST_LOG="trace")
    env.update(extra)
    return env


def test_startup_errors_do_not_echo_secrets(binary):
    """Every way a start-up can fail on its database URL or JWT secret names the problem, exits
    non-zero, and never prints the password or the secret."""
    admin = admin_database_url()
    host_port = admin.split("@", 1)[1].split("/", 1)[0]
    password = f"startpw-{secrets.token_hex(12)}"
    secret = f"jwt-{secrets.token_hex(24)}"
    missing_db = f"no_such_db_{uuid.uuid4().hex[:8]}"
    cases = [
        ({"DATABASE_URL": f"postgres://todo:{password}@{host_port}/{missing_db}", "TODO_JWT_SECRET": secret},
         "does not exist"),
        ({"DATABASE_URL": f"postgres://todo:{password}@127.0.0.1:99999/x", "TODO_JWT_SECRET": secret}, "port"),
        ({"DATABASE_URL": f"postgres://todo:{password}@{host_port}/x?sslmode=bogus", "TODO_JWT_SECRET": secret},
         "ssl"),
        ({"DATABASE_URL": f"mysql://todo:{password}@{host_port}/x", "TODO_JWT_SECRET": secret}, "postgres://"),
        ({"DATABASE_URL": password, "TODO_JWT_SECRET": secret}, "postgres://"),
        ({"DATABASE_URL": f"postgres://todo:{password}@{host_port}/x", "TODO_JWT_SECRET": secret[:31]}, "32 bytes"),
        ({"DATABASE_URL": f"postgres://todo:{password}@{host_port}/x", "TODO_LISTEN": "not-an-address",
          "TODO_JWT_SECRET": secret}, "listen"),
    ]  # fmt: skip
    for env, needle in cases:
        out = subprocess.run([binary], env=_server_env(**env), capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)  # fmt: skip
        output = out.stdout + out.stderr
        assert out.returncode != 0, (env, output[-500:])
        assert needle in output, (needle, output[-800:])
        for s in (password, secret, secret[:31], password[-16:], secret[-16:]):
            assert s not in output, f"start-up error echoes a secret: {output[-800:]}"


def test_help_and_usage_errors_do_not_show_secret_values(binary):
    cores = {name: secrets.token_hex(12) for name in ("TODO_JWT_SECRET", "DATABASE_URL", "APP_API_TOKEN", "DAPR_API_TOKEN")}
    values = {
        "TODO_JWT_SECRET": f"jwt-{cores['TODO_JWT_SECRET']}-0123456789",
        "DATABASE_URL": f"postgres://todo:helppw-{cores['DATABASE_URL']}@127.0.0.1:1/x",
        "APP_API_TOKEN": f"app-{cores['APP_API_TOKEN']}",
        "DAPR_API_TOKEN": f"dapr-{cores['DAPR_API_TOKEN']}",
    }
    env = _server_env(**values)
    for args in (["--help"], ["-h"], ["--version"], ["--transport", "carrier-pigeon"], ["--no-such-flag"]):
        out = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)  # fmt: skip
        output = out.stdout + out.stderr
        assert output.strip(), args
        for name, core in cores.items():
            assert core not in output, f"`todo-mcp {' '.join(args)}` shows the value of {name}"
        if args[0] in ("--help", "-h"):
            assert out.returncode == 0
            # The variables are named, their values hidden.
            for name in ("TODO_JWT_SECRET", "DATABASE_URL", "APP_API_TOKEN"):
                assert f"[env: {name}]" in output, (name, output)
        elif args[0] != "--version":
            assert out.returncode != 0
