#!/usr/bin/env bash
# Load and soak (issue: hardening): `scripts/soak.sh`. Not a test: it measures and reports.
#
# 100,000 MCP tool calls (SOAK_CALLS) from 64 concurrent clients over streamable HTTP against
# PostgreSQL, with the whole pipeline running (todo-mcp and todo-scheduler beside daprd, Redis
# Streams, the Dapr scheduler service), sampling every process's resident memory. Exits non-zero
# when any call failed. Writes target/bench/soak.md; logs stay in target/bench/soak/.
#
# Starts the private PostgreSQL and Redis (scripts/postgres.sh, scripts/redis.sh; left running,
# Redis is flushed), builds daprd (cached) and the release binaries. Run it while the test suite
# is not running: it shares their PostgreSQL and Redis.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

log "building release binaries"
cargo build --release --locked -p mcp-server -p todo-scheduler -p todo-bench
log "starting PostgreSQL and Redis, building daprd (cached)"
bash scripts/postgres.sh start >/dev/null
bash scripts/redis.sh start >/dev/null
bash scripts/daprd.sh build >/dev/null
PYTHON="$(bash scripts/python-env.sh)"

pg="$(bash scripts/postgres.sh env)"
redis="$(bash scripts/redis.sh env)"
dapr="$(bash scripts/daprd.sh path)"
value() { grep "^$1=" <<<"$2" | head -1 | cut -d= -f2-; }

rm -rf target/bench/soak
log "soak: ${SOAK_CALLS:-100000} calls at 64 clients"
"$PYTHON" bench/soak.py \
    "SOAK_DIR=$REPO/target/bench/soak" \
    "DATABASE_URL=$(value DATABASE_URL "$pg")" \
    "PSQL=$(value PSQL "$pg")" \
    "REDIS_HOST=$(value REDIS_HOST "$redis")" \
    "REDIS_CLI=$(value REDIS_CLI "$redis")" \
    "DAPRD=$(value DAPRD "$dapr")" \
    "DAPR_SCHEDULER=$(value DAPR_SCHEDULER "$dapr")"
