"""The in-chart Redis as rendered, run here: the StatefulSet's container command and arguments
with its environment from the rendered Secret (see `deploy_support.rendered_redis`). It requires
the rendered password, keeps its data in an append-only file on its volume across a restart,
refuses writes at maxmemory instead of evicting, refuses to start without a password, and its
readiness probe passes only with the password."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy_support import (
    REDIS,
    Helm,
    RedisClient,
    RedisError,
    RedisServer,
    Rendered,
    container,
    option,
    redis_bytes,
    rendered_redis,
    run_script,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def chart(helm: Helm) -> Rendered:
    return helm.template()


@pytest.fixture(scope="module")
def redis(chart: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = rendered_redis(chart, tmp_path_factory.mktemp("redis"))
    try:
        yield server.start()
    finally:
        server.stop()


def test_it_requires_the_rendered_password(redis: RedisServer) -> None:
    with RedisClient(redis.host) as r:
        with pytest.raises(RedisError, match="NOAUTH"):
            r.call("GET", "anything")
        with pytest.raises(RedisError, match="WRONGPASS"):
            r.call("AUTH", redis.password + "x")
    with redis.client() as r:
        assert r.call("PING") == "PONG"
    # Nothing in the manifest holds it: the container's command names the variable.
    script = " ".join(redis.container["command"] + redis.container["args"])
    assert redis.password not in script and '"$REDIS_PASSWORD"' in script


def test_it_runs_with_an_append_only_file_and_never_evicts(
    redis: RedisServer, chart: Rendered
) -> None:
    c = container(chart.get("StatefulSet", REDIS))
    with redis.client() as r:
        config = {
            k.decode(): v.decode()
            for k, v in zip(*[iter(r.call("CONFIG", "GET", "*"))] * 2, strict=True)
        }
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["save"] == ""
    assert config["maxmemory-policy"] == "noeviction"
    assert int(config["maxmemory"]) == redis_bytes(option(c, "--maxmemory")) == 1024**3
    assert Path(config["dir"]) == redis.data


def test_at_maxmemory_writes_fail_and_nothing_is_evicted(redis: RedisServer) -> None:
    with redis.client() as r:
        limit = r.call("CONFIG", "GET", "maxmemory")[1]
        r.call("SET", "state:kept", "x" * 1000)
        used = int(r.info("memory")["used_memory"])
        r.call("CONFIG", "SET", "maxmemory", used + 512 * 1024)
        try:
            with pytest.raises(RedisError, match="OOM"):
                for i in range(10_000):
                    r.call("XADD", "filling", "*", "data", "y" * 1000)
            assert i > 10, "the limit was hit at once; the test measures nothing"
            assert r.call("GET", "state:kept") == b"x" * 1000
            assert r.info("stats")["evicted_keys"] == "0"
        finally:
            r.call("CONFIG", "SET", "maxmemory", limit)
            r.call("DEL", "filling", "state:kept")


def test_its_data_survives_a_restart_in_its_volume(chart: Rendered, tmp_path: Path) -> None:
    server = rendered_redis(chart, tmp_path)
    try:
        server.start()
        with server.client() as r:
            r.call("XADD", "tasks", "*", "data", "event")
            r.call("XGROUP", "CREATE", "tasks", "scheduler", "0")
            r.call("HSET", "scheduler||task:1", "data", "state")
        # The append-only file is written at once (fsync every second); give it that second.
        time.sleep(1.2)
        server.stop()
        assert (server.data / "appendonlydir").is_dir(), list(server.data.iterdir())
        server.start()
        with server.client() as r:
            assert r.call("XLEN", "tasks") == 1
            assert r.call("XINFO", "GROUPS", "tasks")[0][1] == b"scheduler"
            assert r.call("HGET", "scheduler||task:1", "data") == b"state"
    finally:
        server.stop()


def test_it_refuses_to_start_without_a_password(chart: Rendered, tmp_path: Path) -> None:
    server = rendered_redis(chart, tmp_path)
    for env in ({**server.env, "REDIS_PASSWORD": ""}, {"REDISCLI_AUTH": "x"}):
        try:
            with pytest.raises(AssertionError, match="Redis exited"):
                server.start(env=env)
        finally:
            server.stop()
        assert "REDIS_PASSWORD: is empty" in server.log.read_text()


def test_the_readiness_probe_passes_only_with_the_password(
    redis: RedisServer, tmp_path: Path
) -> None:
    probe = redis.container["readinessProbe"]["exec"]["command"]
    # redis-cli as the probe runs it, pointed at our port instead of 6379.
    real = run_script("redis.sh", "env")["REDIS_CLI"]
    shim = tmp_path / "redis-cli"
    shim.write_text(f'#!/bin/sh\nexec {real} -p {redis.port} "$@"\n')
    shim.chmod(0o755)

    def run(auth: str) -> int:
        env = redis.process_env({**redis.env, "REDISCLI_AUTH": auth})
        env["PATH"] = f"{tmp_path}:{env['PATH']}"
        return subprocess.run(probe, env=env, capture_output=True, timeout=10).returncode

    assert run(redis.env["REDISCLI_AUTH"]) == 0
    assert run(redis.password + "x") != 0
    assert run("") != 0


def test_the_password_rotates_as_docs_cluster_md_says(chart: Rendered, tmp_path: Path) -> None:
    """Both passwords work while the apps move over; after a restart with the new Secret, only
    the new one does."""
    server = rendered_redis(chart, tmp_path)
    old, new = server.password, "n" * 48
    try:
        server.start()
        with server.client() as r:
            r.call("ACL", "SETUSER", "default", f">{new}")
        for password in (old, new):
            with RedisClient(server.host, password) as r:
                assert r.call("PING") == "PONG"
        server.stop()
        server.env = {**server.env, "REDIS_PASSWORD": new, "REDISCLI_AUTH": new}
        server.start()
        with RedisClient(server.host, new) as r:
            assert r.call("PING") == "PONG"
        with RedisClient(server.host) as r, pytest.raises(RedisError, match="WRONGPASS"):
            r.call("AUTH", old)
    finally:
        server.stop()
