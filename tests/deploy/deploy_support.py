"""Helpers of the deployment tests: helm, the rendered objects, and the validators (Kubernetes
schemas through kubernetes-validate, Dapr's CRDs through the JSON Schemas in schemas/)."""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "todo"
LOCAL_VALUES = CHART / "values-local.yaml"
RELEASE = "todo"
NAMESPACE = "todo"
# The Kubernetes version the chart is rendered for and its objects are validated against.
K8S_VERSION = "1.33.0"

# The value sets every structural test runs against: the defaults and Minikube's.
VALUE_SETS = {"default": [], "local": [LOCAL_VALUES]}

# Names of the release's main objects.
MCP = f"{RELEASE}-mcp-server"
SCHEDULER = f"{RELEASE}-scheduler"
SECRET = f"{RELEASE}-secrets"

SCHEMAS = Path(__file__).resolve().parent / "schemas"
COMPONENT_SCHEMA = json.loads((SCHEMAS / "dapr-component.schema.json").read_text())
CONFIGURATION_SCHEMA = json.loads((SCHEMAS / "dapr-configuration.schema.json").read_text())
RESILIENCY_SCHEMA = json.loads((SCHEMAS / "dapr-resiliency.schema.json").read_text())
# The Dapr resources the chart renders, with the schemas from their CRDs; everything else must
# be core Kubernetes.
DAPR_SCHEMAS = {
    "Component": COMPONENT_SCHEMA,
    "Configuration": CONFIGURATION_SCHEMA,
    "Resiliency": RESILIENCY_SCHEMA,
}
DAPR_KINDS = set(DAPR_SCHEMAS)


def run_script(*args: str, timeout: float = 900) -> dict[str, str]:
    """Runs scripts/<args> and returns the KEY=VALUE lines (or the last line) it printed."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        pytest.fail(
            f"scripts/{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
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
                specs.append(
                    (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
                )
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
        self.home = home
        self._sets = 0
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
            pytest.fail(
                f"helm {' '.join(args)} failed ({out.returncode}):\n{out.stderr}{out.stdout}"
            )
        return out

    def value_args(
        self, values: Iterable[Path | str] = (), sets: dict[str, Any] | None = None
    ) -> list[str]:
        """`-f` arguments: the given files, then `sets` ({"a.b": value}) as one more file, which
        keeps the values' YAML types (unlike --set)."""
        args: list[str] = []
        for v in values:
            args += ["-f", str(v)]
        if sets:
            tree: dict[str, Any] = {}
            for dotted, value in sets.items():
                *parents, leaf = dotted.split(".")
                node = tree
                for key in parents:
                    node = node.setdefault(key, {})
                node[leaf] = value
            self._sets += 1
            path = self.home / f"values-{self._sets}.yaml"
            path.write_text(yaml.safe_dump(tree))
            args += ["-f", str(path)]
        return args

    def template_args(
        self, values: Iterable[Path | str], sets: dict[str, Any] | None, release: str
    ) -> list[str]:
        return [
            "template", release, str(CHART), "--namespace", NAMESPACE,
            "--kube-version", K8S_VERSION, *self.value_args(values, sets),
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


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's data, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def validate_k8s(obj: dict[str, Any]) -> str | None:
    """kubernetes-validate --strict against Kubernetes K8S_VERSION; None when valid."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        return f"{obj['kind']}/{obj['metadata']['name']}: {path}: {e.message}"
    return None


def schema_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """What a JSON Schema (draft 7) finds wrong with `obj`; empty when valid."""
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{obj['kind']}/{obj['metadata'].get('name')}: {'/'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


# --- Dapr, locally ---------------------------------------------------------------------------


def local_components(
    rendered: Rendered, dest: Path, redis_host: str, redis_db: int, secrets_file: Path
) -> Path:
    """Writes the rendered Components (and Resiliency policies, as they are) to `dest` as a
    local daprd takes them; only this changes:

    - the `secretstore` component (secretstores.kubernetes, which needs a cluster) becomes a
      secretstores.local.file store under the same name, whose file holds each Secret as one
      multi-valued entry: that is how the Kubernetes store answers, one key per Secret;
    - redisHost points at the test Redis, with `redisDB` set to a database of the caller's own,
      so that the consumer groups `mcp-server` and `scheduler` cannot meet those of tests/dapr
      (or of another module) on the same server;
    - the cron schedules fire every second instead of every minute.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for original in rendered.of_kind("Component"):
        c = copy.deepcopy(original)
        spec = c["spec"]
        if spec["type"] == "secretstores.kubernetes":
            spec["type"] = "secretstores.local.file"
            spec["metadata"] = [
                {"name": "secretsFile", "value": str(secrets_file)},
                {"name": "multiValued", "value": "true"},
            ]
        for m in spec["metadata"]:
            if m["name"] == "redisHost":
                m["value"] = redis_host
                spec["metadata"].append({"name": "redisDB", "value": str(redis_db)})
                break
        for m in spec["metadata"]:
            if m["name"] == "schedule":
                m["value"] = "@every 1s"
        (dest / f"{c['metadata']['name']}.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    # Other resources daprd reads from its resources dir go in as rendered.
    for r in rendered.of_kind("Resiliency"):
        name = f"resiliency-{r['metadata']['name']}.yaml"
        (dest / name).write_text(yaml.safe_dump(r, sort_keys=False))
    return dest


def redis_flushdb(host: str, db: int) -> None:
    """FLUSHDB of our own database (RESP by hand: no client library needed)."""
    h, _, p = host.rpartition(":")
    with socket.create_connection((h or "127.0.0.1", int(p)), timeout=10) as s:
        s.sendall(
            f"*2\r\n$6\r\nSELECT\r\n${len(str(db))}\r\n{db}\r\n*1\r\n$7\r\nFLUSHDB\r\n".encode()
        )
        reply = b""
        while reply.count(b"\r\n") < 2:
            chunk = s.recv(64)
            assert chunk, f"Redis at {host} closed the connection"
            reply += chunk
    assert reply == b"+OK\r\n+OK\r\n", f"FLUSHDB on {host} db {db}: {reply!r}"


def local_dapr(
    rendered: Rendered, base: Path, redis_host: str, redis_db: int, secrets: dict[str, Any]
) -> tuple[Path, Path]:
    """The rendered Components (see `local_components`) and Configuration under `base`, on an
    emptied Redis database; returns the resources dir and the configuration file."""
    # Streams and consumer groups of earlier runs would be replayed to our consumer groups.
    redis_flushdb(redis_host, redis_db)
    base.mkdir(parents=True, exist_ok=True)
    secrets_file = base / "secrets.json"  # beside the resources dir: daprd would load it
    secrets_file.write_text(json.dumps(secrets))
    resources = local_components(rendered, base / "resources", redis_host, redis_db, secrets_file)
    (configuration,) = rendered.of_kind("Configuration")
    config = base / "configuration.yaml"
    config.write_text(yaml.safe_dump(configuration, sort_keys=False))
    return resources, config


def redis_for_tests() -> str:
    """host:port of the test Redis: TODO_TEST_REDIS_HOST, else the private one (started)."""
    return os.environ.get("TODO_TEST_REDIS_HOST") or run_script("redis.sh", "start")["REDIS_HOST"]


def daprd_binary() -> str:
    """daprd: TODO_DAPRD, else `scripts/daprd.sh path`, else built (cached afterwards)."""
    daprd = os.environ.get("TODO_DAPRD")
    if not daprd:
        out = subprocess.run(
            ["bash", str(REPO / "scripts" / "daprd.sh"), "path"], capture_output=True, text=True
        )
        values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        daprd = values.get("DAPRD") if out.returncode == 0 else None
        if not daprd:
            daprd = run_script("daprd.sh", "build", timeout=1800).get("DAPRD")
    if not daprd or not os.access(daprd, os.X_OK):
        pytest.fail(f"no daprd (got {daprd!r}): run scripts/daprd.sh build or set TODO_DAPRD")
    return daprd
