"""The server as an OAuth 2.1 resource server (the MCP authorization spec), against a real
authorization server: Ory Hydra (tests/common/hydra.py) issuing JWT access tokens (and opaque ones
to the clients that ask), and `todo-mcp` started with TODO_AUTH_ISSUER and TODO_RESOURCE_URL,
without the shared secret.

- Clients find where to sign in: the Protected Resource Metadata, and every 401's challenge.
- A service's client-credentials token works; the official Python SDK's OAuth client signs a
  user in from nothing (discovery, dynamic registration, authorization code with PKCE, token).
- Tokens for another audience, expired or not yet valid, from another issuer, signed by a key
  the issuer does not publish, or forged are refused with 401 and the reason; a token without the
  scope a request needs gets 403 `insufficient_scope` naming it.
- Signing keys rotate (RS256, ES256, EdDSA) without a restart; a removed key is refused.
- Opaque tokens are checked through the issuer's introspection endpoint.

Tokens this file signs itself use private keys that Hydra generated and publishes, so only the
claims differ from what Hydra would issue.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from conftest import HttpServer
from net import free_port
from hydra import Hydra, resource_server_env
from support import add, call_ok, ids, list_all

pytestmark = pytest.mark.anyio

BOTH = "tasks:read tasks:write"


def metadata_url(server: Any) -> str:
    return f"{server.base}/.well-known/oauth-protected-resource/mcp"


def post(server: Any, token: str | None, method: str, params: dict[str, Any] | None = None) -> httpx2.Response:
    """One JSON-RPC request to /mcp, as raw HTTP."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return httpx2.post(server.url, headers=headers, json=body, timeout=10)


def call(server: Any, token: str, tool: str, args: dict[str, Any] | None = None) -> httpx2.Response:
    return post(server, token, "tools/call", {"name": tool, "arguments": args or {}})


def assert_refused(response: httpx2.Response, server: Any, reason: str) -> None:
    """401 with a challenge naming the metadata, `invalid_token` and `reason`."""
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert f'resource_metadata="{metadata_url(server)}"' in challenge, challenge
    assert 'error="invalid_token"' in challenge, challenge
    assert reason in challenge and reason in response.text, (challenge, response.text)


def accepted_soon(server: Any, token: str, within: float = 10) -> None:
    """The token is accepted within `within` seconds: a token signed by a key the server has not
    seen makes it fetch the issuer's keys again, at most once per interval (2 s here)."""
    deadline = time.monotonic() + within
    while (r := call(server, token, "list_tasks")).status_code != 200:
        assert r.status_code == 401 and "does not publish" in r.text, r.text
        assert time.monotonic() < deadline, f"not accepted within {within} s: {r.text}"
        time.sleep(0.2)


@contextlib.asynccontextmanager
async def session(server: Any, token: str) -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(server.url, http_client=http), mode="legacy") as client:
            yield client


def sign(key: dict[str, Any], **claims: Any) -> str:
    """A token signed with one of Hydra's published keys (its private JWK), with `claims`."""
    private = jwt.PyJWK(key)
    return jwt.encode(claims, private.key, algorithm=key["alg"], headers={"kid": key["kid"]})


def hs256_by_hand(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token keyed with `secret` (PyJWT will not key HMAC with a public key)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signed}.{b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())}"


def claims_for(server: Any, hydra: Hydra, **more: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": hydra.issuer, "sub": f"signed-{uuid.uuid4().hex[:8]}", "aud": [server.url],
            "iat": now, "nbf": now, "exp": now + 300, "scope": BOTH}
    return {**base, **more}


# --- finding where to sign in ---------------------------------------------------------------------


def test_the_resource_metadata_names_the_issuer_and_the_scopes(oauth: Any, hydra: Hydra) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        r = httpx2.get(f"{oauth.base}{path}", timeout=10)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == {
            "resource": oauth.url,
            "authorization_servers": [hydra.issuer],
            "scopes_supported": ["tasks:read", "tasks:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "todo-mcp",
        }
        # Browser-based clients read it from their own origin.
        assert r.headers["access-control-allow-origin"] == "*"


def test_a_request_without_a_valid_token_is_told_where_to_sign_in(oauth: Any) -> None:
    r = post(oauth, None, "tools/list")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer realm="todo-mcp", resource_metadata="{metadata_url(oauth)}"'
    )
    assert_refused(post(oauth, "not-a-token", "tools/list"), oauth, "not active")
    # The shared-secret mode is off: an HS256 token is no token here.
    hs256 = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
    assert_refused(post(oauth, hs256, "tools/list"), oauth, "invalid")


# --- tokens that work -----------------------------------------------------------------------------


async def test_a_service_signs_in_with_client_credentials(oauth: Any, hydra: Hydra) -> None:
    client = hydra.service_client(BOTH, [oauth.url])
    token = hydra.token(client, BOTH, audience=oauth.url)
    async with session(oauth, token) as c:
        task = await add(c, "Renew the certificate")
        # The user is the token's subject: for client credentials, the client.
        assert task["owner"] == client[0]
        assert ids(await list_all(c)) == [task["id"]]


async def test_the_python_sdk_signs_a_user_in_from_nothing(oauth: Any, hydra: Hydra) -> None:
    """Discovery (401 -> resource metadata -> Hydra's metadata), dynamic registration, the
    authorization code with PKCE and `resource`, the token, the call: the official SDK's
    `OAuthClientProvider` does it all; the test answers the login and consent pages."""
    user = f"oauth-{uuid.uuid4().hex[:8]}"
    asked: dict[str, str] = {}

    class Memory:
        tokens: OAuthToken | None = None
        client: OAuthClientInformationFull | None = None

        async def get_tokens(self) -> OAuthToken | None:
            return self.tokens

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> OAuthClientInformationFull | None:
            return self.client

        async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
            self.client = client_info

    async def redirect(url: str) -> None:
        asked["url"] = url

    async def callback() -> AuthorizationCodeResult:
        code, state = await hydra.sign_in(asked["url"], user, resource=oauth.url)
        return AuthorizationCodeResult(code=code, state=state)

    storage = Memory()
    provider = OAuthClientProvider(
        server_url=oauth.url,
        client_metadata=OAuthClientMetadata(
            client_name="todo e2e",
            redirect_uris=["http://127.0.0.1:9/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect,
        callback_handler=callback,
    )
    async with create_mcp_http_client(auth=provider) as http:
        async with Client(streamable_http_client(oauth.url, http_client=http), mode="legacy") as c:
            task = await add(c, "Book the venue")
            assert task["owner"] == user
            assert ids(await list_all(c)) == [task["id"]]

    params = httpx2.URL(asked["url"]).params
    assert (params["code_challenge_method"], params["resource"]) == ("S256", oauth.url)
    assert storage.client is not None and storage.client.token_endpoint_auth_method == "none"
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert (claims["sub"], claims["aud"], claims["iss"]) == (user, [oauth.url], hydra.issuer)


async def test_opaque_tokens_are_checked_with_the_issuer(oauth: Any, hydra: Hydra) -> None:
    client = hydra.service_client(BOTH, [oauth.url], access_token_strategy="opaque")
    token = hydra.token(client, BOTH, audience=oauth.url)
    assert token.count(".") != 2, "expected an opaque token"
    async with session(oauth, token) as c:
        task = await add(c, "Water the plants")
        assert task["owner"] == client[0]
    revoked = hydra.token(client, BOTH, audience=oauth.url)
    hydra.revoke(client, revoked)
    assert_refused(call(oauth, revoked, "list_tasks"), oauth, "not active")
    elsewhere = hydra.token(client, BOTH)
    assert_refused(call(oauth, elsewhere, "list_tasks"), oauth, "another resource")


# --- tokens that do not -----------------------------------------------------------------------------


def test_a_token_for_another_service_is_refused(oauth: Any, hydra: Hydra) -> None:
    other = "http://127.0.0.1:9/other-service"
    client = hydra.service_client(BOTH, [oauth.url, other])
    assert_refused(call(oauth, hydra.token(client, BOTH, audience=other), "list_tasks"), oauth, "another resource")
    # No audience at all is no better.
    assert_refused(call(oauth, hydra.token(client, BOTH), "list_tasks"), oauth, "another resource")
    # Hydra lets a client ask for a path below its audience; the match here is exact.
    client = hydra.service_client(BOTH, [oauth.url])
    below = hydra.token(client, BOTH, audience=f"{oauth.url}/x")
    assert_refused(call(oauth, below, "list_tasks"), oauth, "another resource")


def test_tokens_out_of_date_or_from_elsewhere_are_refused(oauth: Any, hydra: Hydra) -> None:
    key = hydra.add_signing_key("ES256")
    now = int(time.time())
    # The same key and claims, only these changed: each is refused for its reason.
    accepted_soon(oauth, sign(key, **claims_for(oauth, hydra)))
    cases = {
        "expired": claims_for(oauth, hydra, exp=now - 120),
        "not valid yet": claims_for(oauth, hydra, nbf=now + 600),
        "issuer this server does not trust": claims_for(oauth, hydra, iss="http://127.0.0.1:9"),
        "another resource": claims_for(oauth, hydra, aud=["http://127.0.0.1:9/mcp"]),
    }
    for reason, claims in cases.items():
        assert_refused(call(oauth, sign(key, **claims), "list_tasks"), oauth, reason)


def test_tokens_not_signed_by_the_issuer_are_refused(oauth: Any, hydra: Hydra) -> None:
    published = hydra.add_signing_key("ES256")
    claims = claims_for(oauth, hydra)
    accepted_soon(oauth, sign(published, **claims))
    rogue = ec.generate_private_key(ec.SECP256R1())
    unknown = jwt.encode(claims, rogue, algorithm="ES256", headers={"kid": f"rogue-{uuid.uuid4().hex[:6]}"})
    assert_refused(call(oauth, unknown, "list_tasks"), oauth, "key the issuer does not publish")
    # A published key's id on a signature made with another key.
    forged = jwt.encode(claims, rogue, algorithm="ES256", headers={"kid": published["kid"]})
    assert_refused(call(oauth, forged, "list_tasks"), oauth, "invalid")
    # The public key used as an HMAC secret (algorithm confusion), and no signature at all.
    public = json.dumps({k: published[k] for k in ("kty", "crv", "x", "y")}).encode()
    confused = hs256_by_hand(claims, public, published["kid"])
    assert_refused(call(oauth, confused, "list_tasks"), oauth, "invalid")
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": published["kid"]})
    assert_refused(call(oauth, unsigned, "list_tasks"), oauth, "invalid")


# --- scopes -----------------------------------------------------------------------------------------


async def test_each_scope_opens_its_own_tools(oauth: Any, hydra: Hydra) -> None:
    client = hydra.service_client(BOTH, [oauth.url])
    reader = hydra.token(client, "tasks:read", audience=oauth.url)
    writer = hydra.token(client, BOTH, audience=oauth.url)
    nothing = hydra.token(client, "", audience=oauth.url)

    r = call(oauth, reader, "add_task", {"title": "Not allowed"})
    assert r.status_code == 403, r.text
    assert r.headers["www-authenticate"] == (
        f'Bearer realm="todo-mcp", resource_metadata="{metadata_url(oauth)}", '
        'error="insufficient_scope", error_description="this request needs the `tasks:write` scope", '
        'scope="tasks:write"'
    )
    assert call(oauth, reader, "list_tasks").status_code == 200
    async with session(oauth, writer) as c:
        await add(c, "Allowed")
    async with session(oauth, reader) as c:
        listing = await call_ok(c, "list_tasks")
        assert [t["title"] for t in listing["tasks"]] == ["Allowed"]

    # With neither scope: the handshake and listings, nothing of the user's.
    assert post(oauth, nothing, "tools/list").status_code == 200
    r = call(oauth, nothing, "get_settings")
    assert r.status_code == 403 and 'scope="tasks:read"' in r.headers["www-authenticate"]
    r = post(oauth, nothing, "resources/read", {"uri": "todo://notifications"})
    assert r.status_code == 403 and 'scope="tasks:read"' in r.headers["www-authenticate"]
    stream = httpx2.get(
        oauth.url,
        headers={"Authorization": f"Bearer {nothing}", "Accept": "text/event-stream"},
        timeout=10,
    )
    assert stream.status_code == 403 and 'scope="tasks:read"' in stream.headers["www-authenticate"]


# --- keys ---------------------------------------------------------------------------------------------


async def test_signing_keys_rotate_without_a_restart(oauth: Any, hydra: Hydra) -> None:
    client = hydra.service_client(BOTH, [oauth.url])
    tokens = {}
    for alg in ("ES256", "EdDSA", "RS256"):
        key = hydra.add_signing_key(alg)  # the newest key signs from now on
        token = hydra.token(client, BOTH, audience=oauth.url)
        header = jwt.get_unverified_header(token)
        assert (header["alg"], header["kid"]) == (alg, key["kid"])
        accepted_soon(oauth, token, within=5)
        tokens[alg] = (key["kid"], token)

    # The issuer stops publishing the EdDSA key: its tokens are refused once the server's copy
    # of the keys is older than its maximum age (2 s here), with no restart.
    kid, token = tokens["EdDSA"]
    hydra.delete_signing_key(kid)
    assert kid not in hydra.published_kids()
    deadline = time.monotonic() + 15
    while call(oauth, token, "list_tasks").status_code == 200:
        assert time.monotonic() < deadline, "a removed key was still accepted after 15 s"
        time.sleep(0.5)
    assert_refused(call(oauth, token, "list_tasks"), oauth, "key the issuer does not publish")
    # The others still work.
    for alg in ("ES256", "RS256"):
        assert call(oauth, tokens[alg][1], "list_tasks").status_code == 200, alg


# --- where clients reach the server -------------------------------------------------------------


def test_the_resource_url_host_is_answered(binary: str, database_url: str, hydra: Hydra, tmp_path: Any) -> None:
    """Clients reach the server at TODO_RESOURCE_URL, whatever TODO_ALLOWED_HOSTS says: its host
    is answered (DNS-rebinding protection still refuses every other)."""
    port = free_port()
    resource = f"http://todo.test:{port}/mcp"
    env = {**resource_server_env(hydra, port), "TODO_RESOURCE_URL": resource}
    server = HttpServer(binary, database_url, tmp_path / "server.log", extra_env=env, port=port).start()
    try:
        token = hydra.token(hydra.service_client(BOTH, [resource]), BOTH, audience=resource)

        def tools_list(host: str) -> httpx2.Response:
            headers = {"Host": host, "Authorization": f"Bearer {token}",
                       "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            return httpx2.post(server.url, headers=headers, json=body, timeout=10)

        assert tools_list(f"todo.test:{port}").status_code == 200
        assert tools_list(f"evil.test:{port}").status_code in (400, 403, 421)
        metadata = httpx2.get(f"{server.base}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
        assert metadata["resource"] == resource
    finally:
        server.stop()
