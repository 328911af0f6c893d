"""Fixtures of the deployment tests: a real helm and the chart rendered with the shipped values.

Environment (all optional):
  TODO_HELM             helm binary (default: `scripts/helm.sh`, which fetches it once)
  TODO_DAPRD            daprd (default: `scripts/daprd.sh path`, building it if needed)

The modules that run sidecars start the rendered Redis themselves (with the rendered password,
`deploy_support.rendered_redis`), with the redis-server of `scripts/redis.sh env`.
"""

from __future__ import annotations

import os

import pytest

from deploy_support import VALUE_SETS, Helm, Rendered, run_script


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
