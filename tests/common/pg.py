"""The tests' PostgreSQL (scripts/postgres.sh): its admin URL, its psql, and fresh databases."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _postgres(command: str, key: str) -> str:
    """`key` of what `scripts/postgres.sh command` prints (`start` starts it if need be)."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "postgres.sh"), command],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    for line in out.stdout.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"scripts/postgres.sh {command} printed no {key}:\n{out.stdout}{out.stderr}")


def admin_database_url() -> str:
    """TODO_TEST_DATABASE_URL, else the server scripts/postgres.sh starts."""
    return os.environ.get("TODO_TEST_DATABASE_URL") or _postgres("start", "DATABASE_URL")


def psql() -> str:
    try:
        return _postgres("env", "PSQL")
    except RuntimeError:
        return "psql"


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new database, dropped on leaving (names starting `e2e_` are the ones scripts/test.sh
    drops when a run left them behind)."""
    admin, client = admin_database_url(), psql()
    name = f"{prefix}_{uuid.uuid4().hex}"

    def run(sql: str) -> None:
        out = subprocess.run([client, "-d", admin, "-v", "ON_ERROR_STOP=1", "-qc", sql], capture_output=True, text=True)
        assert out.returncode == 0, f"psql {sql!r}: {out.stderr}"

    run(f"CREATE DATABASE {name}")
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
