"""Ory Hydra, the authorization server of the OAuth tests: built from Go modules by
scripts/hydra.sh (cached like daprd), run on a fresh PostgreSQL database, configured to issue JWT
access tokens with a space-separated `scope` claim, with dynamic client registration and PKCE
required of public clients.

Its admin API plays the parts a real deployment gives to people and apps: registering clients,
rotating keys, and the login and consent app (`sign_in`), which accepts the user and grants the
audience the client asked for with RFC 8707's `resource` (Hydra 2.3 ignores that parameter; its
own is `audience`), so the token names this server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from net import free_port
from pg import REPO, fresh_database


def hydra_binary() -> str:
    """The cached build, built first if need be (scripts/test.sh has built it already)."""
    path = os.environ.get("TODO_HYDRA")
    if path:
        return path
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "hydra.sh"), "build"], capture_output=True, text=True, timeout=1800
    )
    for line in out.stdout.splitlines():
        if line.startswith("HYDRA="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"scripts/hydra.sh build printed no HYDRA=:\n{out.stdout}{out.stderr}")


@contextlib.contextmanager
def running_hydra(workdir: Path) -> Iterator[Hydra]:
    """Hydra on a database of its own, stopped and dropped on leaving."""
    with fresh_database("e2e_hydra") as url:
        server = Hydra(hydra_binary(), f"{url}?sslmode=disable", workdir, free_port(), free_port())
        try:
            yield server.start()
        finally:
            server.stop()


@pytest.fixture(scope="session", name="hydra")
def hydra_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hydra]:
    """Ory Hydra on its own database, for the session (import it into a conftest)."""
    with running_hydra(tmp_path_factory.mktemp("hydra")) as server:
        yield server


def resource_server_env(hydra: Hydra, port: int) -> dict[str, str]:
    """The environment of a `todo-mcp` on `port` that takes Hydra's access tokens: JWTs, and
    opaque ones through Hydra's introspection endpoint."""
    return {
        "TODO_AUTH_ISSUER": hydra.issuer,
        "TODO_RESOURCE_URL": f"http://127.0.0.1:{port}/mcp",
        "TODO_AUTH_INTROSPECTION_URL": f"{hydra.admin}/admin/oauth2/introspect",
    }


@dataclass
class Hydra:
    binary: str
    dsn: str
    workdir: Path
    public_port: int
    admin_port: int
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "hydra.log"

    @property
    def public(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def issuer(self) -> str:
        """The issuer identifier, exactly as Hydra puts it in `iss` and its metadata."""
        return self.public

    def start(self, timeout: float = 60) -> Hydra:
        # The login and consent pages are never fetched: `sign_in` reads their challenge from
        # the redirect and answers through the admin API.
        app = "http://127.0.0.1:9"
        config = f"""
dsn: {self.dsn}
serve:
  public: {{host: 127.0.0.1, port: {self.public_port}}}
  admin: {{host: 127.0.0.1, port: {self.admin_port}}}
urls:
  self: {{issuer: {self.issuer}}}
  login: {app}/login
  consent: {app}/consent
  error: {app}/error
secrets:
  system: ["{uuid.uuid4().hex}"]
strategies:
  access_token: jwt
  jwt: {{scope_claim: string}}
oidc:
  dynamic_client_registration:
    enabled: true
    default_scope: ["tasks:read", "tasks:write", "offline_access"]
webfinger:
  oidc_discovery:
    client_registration_url: {self.public}/oauth2/register
    supported_scope: ["tasks:read", "tasks:write"]
oauth2:
  pkce: {{enforced_for_public_clients: true}}
log: {{level: warn, format: text}}
sqa: {{opt_out: true}}
"""
        path = self.workdir / "hydra.yml"
        path.write_text(config)
        with open(self.log, "ab") as log:
            subprocess.run(
                [self.binary, "migrate", "sql", "up", "-e", "--yes", "-c", str(path)],
                stdout=log, stderr=log, check=True, timeout=120,
            )
            # `--dev` lets the issuer be plain http on 127.0.0.1.
            self.proc = subprocess.Popen(
                [self.binary, "serve", "all", "--dev", "-c", str(path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hydra exited with {self.proc.returncode}; see {self.log}")
            try:
                if all(
                    httpx2.get(f"{base}/health/ready", timeout=1).status_code == 200
                    for base in (self.public, self.admin)
                ):
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"hydra not ready after {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # --- the admin's part ---------------------------------------------------------------------

    def create_client(self, **body: Any) -> dict[str, Any]:
        """A client registered by an administrator (any metadata Hydra takes)."""
        r = httpx2.post(f"{self.admin}/admin/clients", json=body, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()

    def service_client(self, scope: str, audience: list[str], **more: Any) -> tuple[str, str]:
        """A client-credentials client (an agent or service); returns its id and secret."""
        client_id, secret = f"svc-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
        self.create_client(
            client_id=client_id, client_secret=secret, grant_types=["client_credentials"],
            scope=scope, audience=audience, token_endpoint_auth_method="client_secret_basic", **more,
        )
        return client_id, secret

    def token(self, client: tuple[str, str], scope: str, audience: str | None = None) -> str:
        """A client-credentials access token."""
        form = {"grant_type": "client_credentials", "scope": scope}
        if audience is not None:
            form["audience"] = audience
        r = httpx2.post(f"{self.public}/oauth2/token", data=form, auth=client, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def revoke(self, client: tuple[str, str], token: str) -> None:
        r = httpx2.post(f"{self.public}/oauth2/revoke", data={"token": token}, auth=client, timeout=10)
        assert r.status_code == 200, r.text

    def add_signing_key(self, alg: str) -> dict[str, Any]:
        """A new access-token signing key (the newest signs from now on); its private JWK."""
        kid = f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        r = httpx2.post(
            f"{self.admin}/admin/keys/hydra.jwt.access-token",
            json={"alg": alg, "use": "sig", "kid": kid},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return r.json()["keys"][0]

    def delete_signing_key(self, kid: str) -> None:
        r = httpx2.delete(f"{self.admin}/admin/keys/hydra.jwt.access-token/{kid}", timeout=10)
        assert r.status_code == 204, r.text

    def published_kids(self) -> set[str]:
        r = httpx2.get(f"{self.public}/.well-known/jwks.json", timeout=10)
        return {k["kid"] for k in r.json()["keys"]}

    # --- the login and consent app --------------------------------------------------------------

    async def sign_in(self, authorization_url: str, subject: str, resource: str) -> tuple[str, str | None]:
        """Follows the browser's way through Hydra for `authorization_url`: logs `subject` in,
        consents to what the client asked (the audience only if the client named exactly
        `resource`), and returns the code and state the redirect carries to the client."""
        async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:

            async def hop(url: str) -> dict[str, list[str]]:
                r = await browser.get(url)
                assert r.status_code in (302, 303), f"{url}: {r.status_code} {r.text}"
                return urllib.parse.parse_qs(urllib.parse.urlparse(r.headers["location"]).query)

            login = await hop(authorization_url)
            challenge = login["login_challenge"][0]
            r = httpx2.put(
                f"{self.admin}/admin/oauth2/auth/requests/login/accept",
                params={"login_challenge": challenge},
                json={"subject": subject, "remember": False},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            consent = await hop(r.json()["redirect_to"])
            challenge = consent["consent_challenge"][0]
            request = httpx2.get(
                f"{self.admin}/admin/oauth2/auth/requests/consent",
                params={"consent_challenge": challenge},
                timeout=10,
            ).json()
            asked = urllib.parse.parse_qs(urllib.parse.urlparse(request["request_url"]).query)
            audience = [resource] if asked.get("resource") == [resource] else []
            if audience:
                # Refreshing a token checks its audience against the client's list.
                r = httpx2.patch(
                    f"{self.admin}/admin/clients/{request['client']['client_id']}",
                    json=[{"op": "add", "path": "/audience/-", "value": resource}],
                    timeout=10,
                )
                assert r.status_code == 200, r.text
            r = httpx2.put(
                f"{self.admin}/admin/oauth2/auth/requests/consent/accept",
                params={"consent_challenge": challenge},
                json={
                    "grant_scope": request["requested_scope"],
                    "grant_access_token_audience": audience,
                    "remember": False,
                },
                timeout=10,
            )
            assert r.status_code == 200, r.text
            back = await hop(r.json()["redirect_to"])
            assert "code" in back, f"no code in the redirect: {back}"
            return back["code"][0], back.get("state", [None])[0]
