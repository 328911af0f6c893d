"""`todo-mcp` over streamable HTTP as the end-to-end and client tests start it, and what they
share to run it: the shared-secret tokens' key, a clean environment, a log's tail."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from net import free_port

# The HS256 key the test servers are started with, and their tokens signed with (>= 32 bytes).
JWT_SECRET = "tests-secret-0123456789abcdef-0123456789"

SERVER_LOG_LEVEL = "info,mcp_server=debug"


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the server's configuration (no TODO_*, no database, no
    Dapr sidecar or app variables: with them a server would wait for a sidecar) and with
    `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TODO_", "DAPR_"))
        and k not in ("DATABASE_URL", "RUST_LOG", "APP_API_TOKEN", "APP_ID", "APP_PORT")
    }
    env.update(extra)
    return env


def tail(path: Path, lines: int = 80) -> str:
    """The end of a log, for a failure's report."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(cannot read {path}: {e})"


def stop(proc: subprocess.Popen | None, timeout: float = 10) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit code after SIGTERM, if any."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class HttpServer:
    """`todo-mcp` over HTTP on PostgreSQL, on 127.0.0.1:`port` (a free one if unset), with
    `extra_env` added to its environment. With `TODO_AUTH_ISSUER` there it takes that identity
    provider's tokens only: it is started without the shared secret."""

    binary: str
    database_url: str
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def start(self, timeout: float = 30) -> HttpServer:
        self.port = self.port or free_port()
        env = clean_env(
            TODO_TRANSPORT="http",
            TODO_LISTEN=f"127.0.0.1:{self.port}",
            TODO_JWT_SECRET=JWT_SECRET,
            DATABASE_URL=self.database_url,
            RUST_LOG=SERVER_LOG_LEVEL,
        )
        env.update(self.extra_env)
        if "TODO_AUTH_ISSUER" in env:
            del env["TODO_JWT_SECRET"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"HTTP server exited with {self.proc.returncode}:\n{tail(self.log)}")
            if _healthy(f"{self.base}/healthz"):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"HTTP server not healthy after {timeout}s:\n{tail(self.log)}")

    def stop(self, timeout: float = 10) -> int | None:
        """Stops the server ([`stop`]); returns its exit code after SIGTERM, if any."""
        proc, self.proc = self.proc, None
        return stop(proc, timeout)
