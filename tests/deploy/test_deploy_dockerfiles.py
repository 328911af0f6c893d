"""The Dockerfiles against the workspace and the chart. No Docker engine runs here, so they are
not built: these checks catch the drift a build would (a renamed package or binary, a crate
missing from the build context) and what the chart relies on (user, ports)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from deploy_support import CHART, REPO

DOCKERFILES = {
    # Dockerfile: (cargo package, binary, the chart's values key)
    "mcp-server.Dockerfile": ("mcp-server", "todo-mcp", "mcpServer"),
    "scheduler.Dockerfile": ("todo-scheduler", "todo-scheduler", "scheduler"),
}


def workspace_members() -> dict[str, Path]:
    """Cargo package name -> crate dir, for every member of the root workspace."""
    root = tomllib.loads((REPO / "Cargo.toml").read_text())
    members = {}
    for member in root["workspace"]["members"]:
        manifest = tomllib.loads((REPO / member / "Cargo.toml").read_text())
        members[manifest["package"]["name"]] = REPO / member
    return members


def binaries(crate: Path) -> set[str]:
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    names = {b["name"] for b in manifest.get("bin", [])}
    if (crate / "src" / "main.rs").exists() and not any(
        b.get("path", "src/main.rs") == "src/main.rs" for b in manifest.get("bin", [])
    ):
        names.add(manifest["package"]["name"])
    return names


def docker_context_includes(rel: str) -> bool:
    """Whether .dockerignore lets `rel` into the build context (last matching rule wins)."""
    included = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if pattern.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        if hit:
            included = negate
    return included


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES))
def test_dockerfile_builds_the_right_package_and_binary(dockerfile: str) -> None:
    package, binary, _ = DOCKERFILES[dockerfile]
    text = (REPO / "docker" / dockerfile).read_text()
    members = workspace_members()
    assert package in members, f"{package} is not a workspace member: {sorted(members)}"
    assert binary in binaries(members[package]), f"{package} builds {binaries(members[package])}"
    assert f"cargo build --release --locked -p {package}" in text
    assert f"target/release/{binary}" in text
    assert re.search(rf'^ENTRYPOINT \["/usr/local/bin/{binary}"\]$', text, re.M)
    # Multi-stage: a Rust builder, then a small runtime image as a non-root user.
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and stages[0].startswith("rust:"), stages
    assert re.search(r"^USER 65532:65532$", text, re.M)


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES))
def test_rust_version_is_at_least_the_workspace_minimum(dockerfile: str) -> None:
    text = (REPO / "docker" / dockerfile).read_text()
    (version,) = re.findall(r"^ARG RUST_VERSION=(\d+\.\d+)$", text, re.M)
    minimum = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"][
        "rust-version"
    ]
    as_tuple = lambda v: tuple(int(x) for x in v.split(".")[:2])  # noqa: E731
    assert as_tuple(version) >= as_tuple(minimum), (version, minimum)


@pytest.mark.parametrize("dockerfile", sorted(DOCKERFILES))
def test_image_user_and_ports_match_the_chart(dockerfile: str) -> None:
    _, _, key = DOCKERFILES[dockerfile]
    text = (REPO / "docker" / dockerfile).read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 65532
    (port,) = re.findall(r"^EXPOSE (\d+)$", text, re.M)
    assert int(port) == values[key]["port"]


def test_the_build_context_has_every_crate_and_no_build_output() -> None:
    for crate in workspace_members().values():
        rel = crate.relative_to(REPO).as_posix()
        files = [
            f.relative_to(REPO).as_posix()
            for f in crate.rglob("*")
            if f.is_file() and "target" not in f.relative_to(crate).parts
        ]
        assert f"{rel}/Cargo.toml" in files
        missing = [f for f in files if not docker_context_includes(f)]
        assert not missing, f"left out of the build context: {missing}"
        assert not docker_context_includes(f"{rel}/target/release/x"), rel
    for needed in ("Cargo.toml", "Cargo.lock"):
        assert docker_context_includes(needed), needed
    for left_out in (
        "target/release/todo-mcp",
        ".cache/venv/bin/python",
        ".git/HEAD",
        "charts/todo/Chart.yaml",
    ):
        assert not docker_context_includes(left_out), left_out
