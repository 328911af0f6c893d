"""Fixtures of the deployment tests: a real helm, the chart rendered with given values, and the
rendered objects.

Environment (all optional):
  TODO_HELM             helm binary (default: `scripts/helm.sh`, which fetches it once)
  TODO_DAPRD            daprd (default: `scripts/daprd.sh path`, building it if needed)
  TODO_TEST_REDIS_HOST  host:port of a Redis to use (default: `scripts/redis.sh start`)
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "todo"
LOCAL_VALUES = CHART / "values-local.yaml"
RELEASE = "todo"
NAMESPACE = "todo"

# The value sets every structural test runs against: the defaults and Minikube's.
VALUE_SETS = {"default": [], "local": [LOCAL_VALUES]}


def run_script(*args: str, timeout: float = 900) -> dict[str, str]:
    """Runs scripts/<args> and returns the KEY=VALUE lines (or the last line) it printed."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        pytest.fail(f"scripts/{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    values = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper():
            values[key] = value.strip()
    lines = out.stdout.strip().splitlines()
    values.setdefault("_last", lines[-1] if lines else "")
    return values


@dataclass
class Rendered:
    """The objects `helm template` printed, in order."""

    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}: {self.names()}"
        return found[0]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        return found[0] if found else None

    def names(self) -> list[str]:
        return [f"{o['kind']}/{o['metadata']['name']}" for o in self.objects]

    def pod_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, pod spec) of every workload and bare Pod."""
        specs = []
        for o in self.objects:
            if o["kind"] in ("Deployment", "StatefulSet"):
                specs.append((f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]))
            elif o["kind"] == "Pod":
                specs.append((f"Pod/{o['metadata']['name']}", o["spec"]))
        return specs


def container(deployment: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if name is None:
        assert len(containers) == 1, containers
        return containers[0]
    (found,) = [c for c in containers if c["name"] == name]
    return found


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    """A container's env as name -> value (a string) or valueFrom (a dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or []}


def pod_annotations(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("annotations") or {}


class Helm:
    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        # Private helm dirs: nothing from (or into) the user's helm config and cache.
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            # No cluster: keep helm away from any kubeconfig of the machine.
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, env=self.env, timeout=120
        )
        if check and out.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({out.returncode}):\n{out.stderr}{out.stdout}")
        return out

    @staticmethod
    def value_args(values: Iterable[Path | str] = (), sets: dict[str, Any] | None = None) -> list[str]:
        args: list[str] = []
        for v in values:
            args += ["-f", str(v)]
        for key, value in (sets or {}).items():
            if isinstance(value, str):
                args += ["--set-string", f"{key}={value}"]
            else:
                args += ["--set", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"]
        return args

    def template_args(
        self, values: Iterable[Path | str], sets: dict[str, Any] | None, release: str
    ) -> list[str]:
        return [
            "template", release, str(CHART), "--namespace", NAMESPACE,
            *self.value_args(values, sets),
        ]  # fmt: skip

    def template(
        self,
        values: Iterable[Path | str] = (),
        sets: dict[str, Any] | None = None,
        release: str = RELEASE,
    ) -> Rendered:
        out = self.run(*self.template_args(values, sets, release))
        objects = [d for d in yaml.safe_load_all(out.stdout) if d]
        return Rendered(objects)

    def template_error(
        self,
        values: Iterable[Path | str] = (),
        sets: dict[str, Any] | None = None,
        release: str = RELEASE,
    ) -> str:
        """Renders values that must be refused; returns helm's error."""
        out = self.run(*self.template_args(values, sets, release), check=False)
        assert out.returncode != 0, f"helm rendered values it should refuse: {sets}"
        return out.stderr


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = os.environ.get("TODO_HELM") or run_script("helm.sh", timeout=600)["_last"]
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"no helm (got {binary!r}): run scripts/helm.sh or set TODO_HELM")
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> dict[str, Rendered]:
    """The chart rendered with each of VALUE_SETS."""
    return {name: helm.template(files) for name, files in VALUE_SETS.items()}


@pytest.fixture(params=sorted(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    return request.param
