"""Helpers of the deployment tests: helm, the rendered objects, and the validators (Kubernetes
schemas through kubernetes-validate, Dapr's CRDs through the JSON Schemas in schemas/)."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dapr"))
from dapr_support import free_port, tail, wait_until  # noqa: E402

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
REDIS = f"{RELEASE}-redis"

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


def option(c: dict[str, Any], name: str) -> str:
    """The value after `name` in a container's args (`--maxmemory 1gb`)."""
    args = c["args"]
    assert args.count(name) == 1, f"{name} in {args}"
    return args[args.index(name) + 1]


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


# --- Redis, as rendered ----------------------------------------------------------------------


class RedisError(Exception):
    """An error reply."""


class RedisClient:
    """A minimal RESP client (no client library needed): one connection, AUTH when given."""

    def __init__(self, host: str, password: str | None = None, timeout: float = 10) -> None:
        h, _, p = host.rpartition(":")
        self.sock = socket.create_connection((h or "127.0.0.1", int(p)), timeout=timeout)
        self.file = self.sock.makefile("rb")
        if password is not None:
            self.call("AUTH", password)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> RedisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *args: str | int | bytes) -> Any:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out += [f"${len(b)}\r\n".encode(), b, b"\r\n"]
        self.sock.sendall(b"".join(out))
        return self._read()

    def info(self, section: str) -> dict[str, str]:
        text = self.call("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _read(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise AssertionError(f"unexpected RESP reply {line!r}")


def redis_bytes(size: str) -> int:
    """A Redis memory size (`512mb`, `1gb`: powers of 1024 with a `b`, of 1000 without)."""
    m = re.fullmatch(r"(\d+)(k|kb|m|mb|g|gb)?", size.lower())
    assert m, f"not a Redis memory size: {size!r}"
    unit = {None: 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}
    return int(m.group(1)) * unit[m.group(2)]


def k8s_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (`256Mi`, `2Gi`, `1G`) in bytes."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", quantity)
    assert m, f"not a memory quantity this test reads: {quantity!r}"
    unit = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}  # fmt: skip
    return int(m.group(1)) * unit[m.group(2)]


def resolve_env(
    c: dict[str, Any], secrets: dict[str, dict[str, str]], overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """A container's environment as the kubelet builds it: values, and secretKeyRefs read from
    the given Secrets (name -> data)."""
    env = {}
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"]][ref["key"]]
    env.update(overrides or {})
    return env


def rendered_secrets(rendered: Rendered) -> dict[str, dict[str, str]]:
    """Every rendered Secret, decoded: what the release's namespace holds."""
    return {s["metadata"]["name"]: secret_data(s) for s in rendered.of_kind("Secret")}


@dataclass
class RedisServer:
    """The in-chart Redis as rendered, run here: the container's command and arguments, its
    environment from the rendered Secret, only its data directory (the volume's mount) and its
    port (`--port`, `--bind 127.0.0.1` added at the end) our own."""

    container: dict[str, Any]
    data: Path
    env: dict[str, str]
    bin_dir: Path
    log: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def password(self) -> str:
        return self.env["REDIS_PASSWORD"]

    def argv(self) -> list[str]:
        args = list(self.container["args"])
        mount = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}["data"]
        i = args.index("--dir")
        assert args[i + 1] == mount, f"Redis writes to {args[i + 1]}, not to its volume {mount}"
        args[i + 1] = str(self.data)
        return [*self.container["command"], *args, "--port", str(self.port), "--bind", "127.0.0.1"]

    def start(self, env: dict[str, str] | None = None) -> RedisServer:
        """Starts it (`env` replaces the rendered environment) and waits for an authenticated
        PONG."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.process_env(self.env if env is None else env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: self.ping(),
            30,
            f"Redis on {self.host}",
            diagnose=lambda: tail(self.log),
        )
        return self

    def process_env(self, env: dict[str, str]) -> dict[str, str]:
        return {"PATH": f"{self.bin_dir}:{os.environ['PATH']}", "HOME": str(self.data), **env}

    def ping(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"Redis exited ({self.proc.returncode}):\n{tail(self.log)}")
        try:
            with self.client() as r:
                return r.call("PING") == "PONG"
        except OSError:
            return False

    def client(self) -> RedisClient:
        """A connection, authenticated with the rendered password."""
        return RedisClient(self.host, self.password)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def rendered_redis(rendered: Rendered, base: Path) -> RedisServer:
    """The rendered Redis StatefulSet's container, ready to `start` under `base`."""
    sts = rendered.get("StatefulSet", REDIS)
    c = container(sts)
    redis_server = run_script("redis.sh", "env")["REDIS_SERVER"]
    base.mkdir(parents=True, exist_ok=True)
    return RedisServer(
        container=c,
        data=base / "data",
        env=resolve_env(c, rendered_secrets(rendered)),
        bin_dir=Path(redis_server).parent,
        log=base / "redis.log",
    )


# --- Dapr, locally ---------------------------------------------------------------------------

# The stand-in for Dapr's operator, which in Kubernetes resolves the components' secretKeyRefs
# from the namespace's Secrets itself (the `kubernetes` store, the default of auth.secretStore).
OPERATOR_STORE = "kubernetes"


def local_components(
    rendered: Rendered, dest: Path, redis_host: str, secrets_file: Path, namespace_file: Path
) -> Path:
    """Writes the rendered Components (and Resiliency policies, as they are) to `dest` as a
    local daprd takes them; only this changes:

    - the `secretstore` component (secretstores.kubernetes, which needs a cluster) becomes a
      secretstores.local.file store under the same name, whose file holds each Secret as one
      multi-valued entry: that is how the Kubernetes store answers, one key per Secret;
    - a secretKeyRef (the Redis password) is resolved as Dapr's operator does in a cluster, from
      the Secret of that name in the namespace: a component without `auth` gets
      `auth.secretStore: kubernetes` (Kubernetes mode's default; self-hosted daprd has none), and
      a `kubernetes` store (local.file, multi-valued) holds every rendered Secret;
    - redisHost points at the test's Redis;
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
        if any("secretKeyRef" in m for m in spec["metadata"]):
            # The operator resolves secretKeyRefs only for components without auth.secretStore.
            assert "auth" not in c, c["metadata"]["name"]
            c["auth"] = {"secretStore": OPERATOR_STORE}
        for m in spec["metadata"]:
            if m["name"] == "redisHost":
                m["value"] = redis_host
            if m["name"] == "schedule":
                m["value"] = "@every 1s"
        (dest / f"{c['metadata']['name']}.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    operator = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": OPERATOR_STORE},
        "spec": {
            "type": "secretstores.local.file",
            "version": "v1",
            "metadata": [
                {"name": "secretsFile", "value": str(namespace_file)},
                {"name": "multiValued", "value": "true"},
            ],
        },
    }
    (dest / f"{OPERATOR_STORE}.yaml").write_text(yaml.safe_dump(operator, sort_keys=False))
    # Other resources daprd reads from its resources dir go in as rendered.
    for r in rendered.of_kind("Resiliency"):
        name = f"resiliency-{r['metadata']['name']}.yaml"
        (dest / name).write_text(yaml.safe_dump(r, sort_keys=False))
    return dest


def local_dapr(
    rendered: Rendered, base: Path, redis_host: str, secrets: dict[str, Any]
) -> tuple[Path, Path]:
    """The rendered Components (see `local_components`) and Configuration under `base`;
    returns the resources dir and the configuration file. The Configuration also denies the
    sidecars' API the operator's stand-in, as the pods' annotation (no built-in Kubernetes
    store) does in a cluster."""
    base.mkdir(parents=True, exist_ok=True)
    # Beside the resources dir: daprd would load them as resources.
    secrets_file = base / "secrets.json"
    secrets_file.write_text(json.dumps(secrets))
    namespace_file = base / "namespace-secrets.json"
    namespace_file.write_text(json.dumps(rendered_secrets(rendered)))
    resources = local_components(
        rendered, base / "resources", redis_host, secrets_file, namespace_file
    )
    (configuration,) = rendered.of_kind("Configuration")
    configuration = copy.deepcopy(configuration)
    configuration["spec"]["secrets"]["scopes"].append(
        {"storeName": OPERATOR_STORE, "defaultAccess": "deny"}
    )
    config = base / "configuration.yaml"
    config.write_text(yaml.safe_dump(configuration, sort_keys=False))
    return resources, config


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
