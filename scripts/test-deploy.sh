#!/usr/bin/env bash
# The deployment tests (no cluster needed): `scripts/test-deploy.sh [pytest args]`.
#
# Validates charts/todo with a real helm (scripts/helm.sh): lint, render, every Kubernetes
# object against the Kubernetes 1.33 schemas, the Dapr Components and Configuration against
# schemas from Dapr's CRDs, values changes; loads the rendered components into a real daprd
# (scripts/daprd.sh) on the private Redis (scripts/redis.sh) for a pub/sub round trip; runs
# todo-mcp and todo-scheduler with their rendered environments beside such sidecars; and checks
# the Dockerfiles against the workspace.
#
# Installs what it needs: helm, Redis, daprd (cached after the first build), the project venv
# (scripts/python-env.sh) plus tests/deploy/requirements.txt. It builds no Rust: the pod tests
# take TODO_MCP_BIN and TODO_SCHEDULER_BIN (default target/debug/) and are skipped without them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

log "fetching helm (cached)"
TODO_HELM="$(bash scripts/helm.sh)"
export TODO_HELM

prepare_test_deps # sets PYTHON
REQ="tests/deploy/requirements.txt"
VENV="$(dirname "$(dirname "$PYTHON")")"
STAMP="$VENV/.todo-deploy-requirements.sha256"
# Same lock as scripts/python-env.sh: one pip at a time in the venv.
take_lock "$CACHE_DIR/venv.lock" 900
# Also keyed on python-env.sh's own stamp: when it reinstalls, so do we.
want="$(cat "$REQ" "$VENV/.todo-requirements.sha256" 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    log "installing $REQ into $VENV"
    rm -f "$STAMP"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip install -q -r "$REQ" >&2 \
        || die "pip install -r $REQ failed"
    echo "$want" >"$STAMP"
fi
exec 9>&-

log "deployment tests"
pytest_in tests/deploy "$@"
