#!/usr/bin/env bash
# Benchmark of todo-mcp against PostgreSQL. Not a test: it measures and reports.
#
# Usage: scripts/bench.sh
#
# What it does, in one run:
#   1. builds the release binaries (todo-mcp, todo-bench);
#   2. starts the private PostgreSQL cluster if it is not running (scripts/postgres.sh start) and
#      recreates the database $BENCH_DB from scratch. Both are LEFT in place at the end: the
#      cluster may be shared with the tests, and the data can be inspected; stop the cluster with
#      `scripts/postgres.sh stop`. Only todo-mcp, which this script starts, is stopped (trap);
#   3. seeds user `bench-list` with $BENCH_LIST_TASKS tasks through the server (add_task);
#   4. for add_task, then list_tasks, and for each client count in $BENCH_CLIENTS: runs pgbench
#      with the same SQL transaction (bench/sql/<tool>.sql, -M prepared, -c N -j min(N,2)), then
#      todo-bench with N concurrent HTTP clients against `todo-mcp --transport http --events
#      embedded` (started on a free loopback port for each of its runs, and stopped during
#      pgbench's, since its outbox relay would work on pgbench's rows), each for $BENCH_WARMUP s
#      of warm-up and $BENCH_SECONDS s measured, after a CHECKPOINT so that both start alike;
#      the server's in-process outbox relay works during its runs, as it does in production,
#      and is waited for (outbox drained) before the next run;
#   5. times $BENCH_SEQ_CALLS sequential calls over HTTP and over stdio: list_tasks {"limit": 10}
#      (the call the p50 target is judged on) and get_task on the seeded data, then add_task;
#      over HTTP also add_tasks with 50 tasks, against 50 add_task calls;
#   6. prints the table and writes it to target/bench/results.md (raw JSON lines in
#      target/bench/results.jsonl, server log in target/bench/server.log).
#
# Targets (informational; the verdicts do not change the exit status): add_task at 8 and at 32
# clients reaches >= 0.7 of the pgbench rate; sequential HTTP call p50 <= 2 ms; one add_tasks of 50
# tasks >= 10x faster than 50 add_task calls. The script exits non-zero
# only when something failed: a build, a start, or any failed call or transaction.
#
# Environment:
#   BENCH_SECONDS      measured seconds per run (default 15)
#   BENCH_WARMUP       warm-up seconds before each measured run (default 3)
#   BENCH_CLIENTS      client counts (default "1 8 32")
#   BENCH_SEQ_CALLS    sequential calls per line (default 2000; add_task uses a quarter)
#   BENCH_LIST_TASKS   tasks seeded for the list_tasks user (default 1000)
#   BENCH_DB           database name (default todo_bench; dropped and recreated)
#   BENCH_DB_MAX_CONNECTIONS  passed to todo-mcp --db-max-connections (default: the server's own
#                      default, 16)
#   BENCH_QUIET_WAIT   before each measured run, wait up to this many seconds for the machine to
#                      be idle (other builds or tests on the shared cores); 0 = don't (default 30)
#   TODO_PG_FAST=1     (scripts/postgres.sh) durability off; only takes effect when the cluster
#                      (re)starts. Default: fsync and synchronous_commit on.
#
# CPU: 2 cores are shared by the load generator (pgbench or todo-bench), PostgreSQL and
# todo-mcp; each line reports how the cores were spent, sampled from /proc over the window.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_SECONDS="${BENCH_SECONDS:-15}"
BENCH_WARMUP="${BENCH_WARMUP:-3}"
BENCH_CLIENTS="${BENCH_CLIENTS:-1 8 32}"
BENCH_SEQ_CALLS="${BENCH_SEQ_CALLS:-2000}"
BENCH_LIST_TASKS="${BENCH_LIST_TASKS:-1000}"
BENCH_DB="${BENCH_DB:-todo_bench}"
BENCH_DB_MAX_CONNECTIONS="${BENCH_DB_MAX_CONNECTIONS:-}"
BENCH_QUIET_WAIT="${BENCH_QUIET_WAIT:-30}"

[[ "$BENCH_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "BENCH_DB must be a plain lower-case identifier"
[[ "$BENCH_SECONDS" =~ ^[0-9]+$ && "$BENCH_SECONDS" -gt 0 ]] || die "BENCH_SECONDS must be a positive integer"
[[ "$BENCH_WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number of seconds"
[[ "$BENCH_QUIET_WAIT" =~ ^[0-9]+$ ]] || die "BENCH_QUIET_WAIT must be a whole number of seconds"

# Before a measured run: idle = < 10% busy (lib.sh's wait_for_idle).
wait_quiet() { wait_for_idle "$BENCH_QUIET_WAIT" 10; }

cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="$TARGET_DIR/bench"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

# --- build ----------------------------------------------------------------------------------
log "building release binaries (cargo build --release -p mcp-server -p todo-bench)"
cargo build --release -p mcp-server -p todo-bench >&2 || die "build failed"
SERVER_BIN="$TARGET_DIR/release/todo-mcp"
TB="$TARGET_DIR/release/todo-bench"

# --- PostgreSQL -------------------------------------------------------------------------------
bash "$REPO/scripts/postgres.sh" start >/dev/null || die "cannot start PostgreSQL"
eval "$(bash "$REPO/scripts/postgres.sh" env --export)"
[[ -x "${PGBENCH:-}" ]] || die "pgbench not found (scripts/postgres.sh env gave '${PGBENCH:-}')"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$PGDATABASE" "$@"; }
psql_bench() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_DB" "$@"; }
log "recreating database $BENCH_DB"
psql_admin -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" -c "CREATE DATABASE $BENCH_DB"
BENCH_URL="${DATABASE_URL%/*}/$BENCH_DB"

# --- server -----------------------------------------------------------------------------------
# todo-mcp runs only during its own runs: its in-process outbox relay would otherwise publish
# the outbox rows pgbench writes, on the cores pgbench is measured on.
TODO_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
export TODO_JWT_SECRET
unset DAPR_HTTP_PORT DAPR_GRPC_PORT # no sidecar: events stay in-process (--events embedded)
SERVER_PID=""
: >"$OUT/server.log"
start_server() {
    local port
    port="$(free_port)"
    MCP_URL="http://127.0.0.1:$port/mcp"
    # One user per tool drives all its clients: the per-user fair share and quotas would measure
    # themselves, not the server (scripts/bench-fairness.sh measures the fair share).
    local server_args=(--transport http --listen "127.0.0.1:$port" --database-url "$BENCH_URL" --events embedded
        --rate-limit-per-second 0 --requests-in-flight-per-user 1024 --tasks-per-user 4000000000)
    [[ -n "$BENCH_DB_MAX_CONNECTIONS" ]] && server_args+=(--db-max-connections "$BENCH_DB_MAX_CONNECTIONS")
    "$SERVER_BIN" "${server_args[@]}" >>"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    wait_for_port 127.0.0.1 "$port" 60 || die "todo-mcp did not start; see $OUT/server.log"
    kill -0 "$SERVER_PID" 2>/dev/null || die "todo-mcp exited; see $OUT/server.log"
}
stop_server() {
    if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

ADD_TOKEN="$("$TB" token --sub bench-add)"
LIST_TOKEN="$("$TB" token --sub bench-list)"
SEQ_ADD_TOKEN="$("$TB" token --sub bench-seq-add)"

# The add_task arguments of every HTTP and stdio call; bench/sql/add_task.sql mirrors them.
ADD_ARGS='{"title":"Benchmark task {n}","priority":"high","tags":["work","bench"],"due":"2030-06-01T17:00","time_zone":"Europe/Paris"}'

# add_tasks with 50 times those arguments (distinct titles), and how many such calls to time.
BATCH_ARGS="{\"tasks\":[$(for i in $(seq 1 50); do
    printf '%s' "${ADD_ARGS/\{n\}/\{n\}.$i}"
    if ((i < 50)); then printf ','; fi
done)]}"
BATCH_CALLS=$((BENCH_SEQ_CALLS / 40 + 5))

# Appends one todo-bench/pgbench result line; fails the script on errors.
record() {
    local line="$1"
    printf '%s\n' "$line" >>"$RESULTS"
    printf '%s\n' "$line" >&2
    if ! grep -q '"errors":0[,}]' <<<"$line"; then
        die "errors in the run above; results so far in $RESULTS"
    fi
}

http_run() { # clients token tool args label [more todo-bench args]
    local clients="$1" token="$2" tool="$3" args="$4" label="$5"
    shift 5
    "$TB" http --url "$MCP_URL" --token "$token" --server-pid "$SERVER_PID" \
        --clients "$clients" --tool "$tool" --args "$args" --label "$label" "$@"
}

# Transactions of the benchmark database so far. Read with the server stopped: a backend
# reports its counts when it exits, at the latest.
pg_xacts() {
    psql_bench -At -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}
outbox_backlog() { psql_bench -At -c "SELECT count(*) FROM outbox WHERE published_at IS NULL"; }

# Waits (server running) until the relay has published every outbox row.
wait_outbox_drained() {
    local deadline=$((SECONDS + 120))
    while [[ "$(outbox_backlog)" != 0 ]]; do
        ((SECONDS < deadline)) || die "the outbox relay did not drain the outbox within 120 s"
        sleep 0.5
    done
}

# One measured todo-mcp run on a freshly started server: the result line gets the server's DB
# transactions per call (the relay's included) and the outbox backlog when the load stopped.
server_load_run() { # clients token tool args
    local x0 x1 line backlog all_ok
    wait_quiet
    x0="$(pg_xacts)"
    start_server
    checkpoint
    line="$(http_run "$1" "$2" "$3" "$4" load --duration "$BENCH_SECONDS" --warmup "$BENCH_WARMUP")"
    backlog="$(outbox_backlog)"
    wait_outbox_drained
    stop_server
    x1="$(pg_xacts)"
    all_ok="$(json_num "$line" all_ok)"
    line="${line%\}},\"backlog_after\":$backlog,\"db_xacts_per_call\":$(awk -v a="$x0" -v b="$x1" -v n="${all_ok:-0}" \
        'BEGIN { if (n > 0) printf "%.3f", (b - a) / n; else print "null" }')}"
    record "$line"
}

# --- seed -------------------------------------------------------------------------------------
log "seeding $BENCH_LIST_TASKS tasks for bench-list through the server"
start_server
seed="$(http_run 4 "$LIST_TOKEN" add_task "$ADD_ARGS" seed --calls "$BENCH_LIST_TASKS")"
grep -q '"errors":0[,}]' <<<"$seed" || die "seeding failed: $seed"
wait_outbox_drained
stop_server

# A CloudEvent envelope exactly as the server writes it (same size and shape) for add_task.sql.
ENVELOPE="$(psql_bench -At -c "SELECT envelope::text FROM outbox ORDER BY seq DESC LIMIT 1")"
[[ -n "$ENVELOPE" ]] || die "no outbox row after seeding"
log "outbox envelope: ${#ENVELOPE} bytes"

add_vars=(
    -D owner=bench-add -D "title=Benchmark task 1" -D "title_key=benchmark task 1"
    -D status=pending -D priority=3 -D 'tags=["work", "bench"]'
    -D "due=2030-06-01 15:00:00+00" -D tz=Europe/Paris -D tag1=work -D tag2=bench
    -D topic=tasks -D event_type=com.todo.task.created -D "envelope=$ENVELOPE"
    -D "traceparent=00-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')-01"
)

pgbench_run() { # tool clients [pgbench -D args...]
    local tool="$1" clients="$2"
    shift 2
    "$TB" pgbench --pgbench "$PGBENCH" --tool "$tool" --script "$REPO/bench/sql/$tool.sql" \
        --clients "$clients" --duration "$BENCH_SECONDS" --warmup "$BENCH_WARMUP" \
        -- "$@" "$BENCH_DB"
}

checkpoint() { psql_bench -c "CHECKPOINT"; }

# --- throughput -------------------------------------------------------------------------------
for n in $BENCH_CLIENTS; do
    log "add_task, $n client(s): pgbench"
    wait_quiet
    checkpoint
    record "$(pgbench_run add_task "$n" "${add_vars[@]}")"
    # pgbench's outbox rows are not events anyone waits for: mark them published, as the relay
    # would, so that the server does not start with a backlog.
    psql_bench -c "UPDATE outbox SET published_at = now() WHERE published_at IS NULL"
    log "add_task, $n client(s): todo-mcp over HTTP"
    server_load_run "$n" "$ADD_TOKEN" add_task "$ADD_ARGS"
done

log "VACUUM ANALYZE before the read-only phase"
psql_bench -c "VACUUM ANALYZE"

# The first page of bench-list, as the page query returns it: its ids feed the reminders query.
mapfile -t PAGE_IDS < <(psql_bench -At -c "SELECT t.id FROM tasks t WHERE t.owner = 'bench-list' \
    AND t.status = 'pending' ORDER BY t.created_at DESC, t.id DESC LIMIT 50")
[[ ${#PAGE_IDS[@]} -eq 50 ]] || die "expected 50 tasks on the first page, got ${#PAGE_IDS[@]}"
# The server binds them as one uuid[] parameter; pgbench sends the array's text form.
page_ids="$(IFS=,; echo "${PAGE_IDS[*]}")"
list_vars=(-D owner=bench-list -D status=pending -D limit=51 -D "ids={$page_ids}")

for n in $BENCH_CLIENTS; do
    log "list_tasks, $n client(s): pgbench"
    wait_quiet
    checkpoint
    record "$(pgbench_run list_tasks "$n" "${list_vars[@]}")"
    log "list_tasks, $n client(s): todo-mcp over HTTP"
    server_load_run "$n" "$LIST_TOKEN" list_tasks '{}'
done

# --- sequential latency -----------------------------------------------------------------------
SEQ_WARM=$((BENCH_SEQ_CALLS / 10))
ADD_SEQ_CALLS=$((BENCH_SEQ_CALLS / 4))
GET_ARGS="{\"task_id\":\"${PAGE_IDS[0]}\"}"
stdio_run() { # user tool args label calls
    "$TB" stdio --bin "$SERVER_BIN" --database-url "$BENCH_URL" --user "$1" \
        --tool "$2" --args "$3" --label "$4" --calls "$5" --warmup-calls "$SEQ_WARM" \
        --log "$OUT/stdio-server.log" -- --events embedded
}
log "sequential calls over HTTP"
wait_quiet
start_server
record "$(http_run 1 "$LIST_TOKEN" list_tasks '{"limit":10}' 'seq-target:list_tasks {"limit":10}' \
    --calls "$BENCH_SEQ_CALLS" --warmup-calls "$SEQ_WARM")"
record "$(http_run 1 "$LIST_TOKEN" get_task "$GET_ARGS" 'seq:get_task' \
    --calls "$BENCH_SEQ_CALLS" --warmup-calls "$SEQ_WARM")"
single="$(http_run 1 "$SEQ_ADD_TOKEN" add_task "$ADD_ARGS" 'seq:add_task' \
    --calls "$ADD_SEQ_CALLS" --warmup-calls "$SEQ_WARM")"
record "$single"
# The same 50 tasks in one add_tasks call, against 50 add_task calls (the line above).
batch="$(http_run 1 "$SEQ_ADD_TOKEN" add_tasks "$BATCH_ARGS" 'seq:add_tasks (50 tasks)' \
    --calls "$BATCH_CALLS" --warmup-calls 2)"
record "$batch"
wait_outbox_drained
stop_server
BATCH_SPEEDUP="$(awk -v one="$(json_num "$single" mean_ms)" -v fifty="$(json_num "$batch" mean_ms)" \
    'BEGIN { if (fifty > 0) printf "%.1f", 50 * one / fifty; else print "n/a" }')"
log "50 tasks: one add_tasks call is ${BATCH_SPEEDUP}x faster than 50 add_task calls (target >= 10x)"
log "sequential calls over stdio"
wait_quiet
record "$(stdio_run bench-list list_tasks '{"limit":10}' 'seq-target:list_tasks {"limit":10}' "$BENCH_SEQ_CALLS")"
record "$(stdio_run bench-list get_task "$GET_ARGS" 'seq:get_task' "$BENCH_SEQ_CALLS")"
record "$(stdio_run bench-seq-add add_task "$ADD_ARGS" 'seq:add_task' "$ADD_SEQ_CALLS")"

# --- report -----------------------------------------------------------------------------------
pg_setting() { psql_bench -At -c "SHOW $1"; }
rev="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ]] && rev="$rev (dirty)"
header="## todo-mcp benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $rev

- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GB; load generator, PostgreSQL and todo-mcp share the cores
- PostgreSQL $(pg_setting server_version | cut -d' ' -f1): fsync=$(pg_setting fsync), synchronous_commit=$(pg_setting synchronous_commit), shared_buffers=$(pg_setting shared_buffers); database $BENCH_DB created fresh
- todo-mcp pool: --db-max-connections ${BENCH_DB_MAX_CONNECTIONS:-16 (default)}; pgbench: -M prepared -c N -j min(N,2), scripts bench/sql/*.sql
- each run: ${BENCH_WARMUP} s warm-up, ${BENCH_SECONDS} s measured, after a CHECKPOINT (and after waiting up to ${BENCH_QUIET_WAIT} s for an idle machine); pgbench runs first at each N, with todo-mcp stopped
- todo-mcp: --events embedded (no Dapr sidecar), logging RUST_LOG=${RUST_LOG:-unset (info)}
- add_task arguments: \`$ADD_ARGS\`; list_tasks: \`{}\` (50 of $BENCH_LIST_TASKS pending tasks + count + reminders)
- CPU% = percent of one core over the measured window (max $(( $(nproc) * 100 ))), from /proc"
"$TB" report --results "$RESULTS" --md "$OUT/results.md" --header "$header"
printf '\nBatches: 50 tasks in one add_tasks call vs 50 sequential add_task calls (mean per call x 50): %sx faster (target >= 10x).\n' \
    "$BATCH_SPEEDUP" >>"$OUT/results.md"
log "report written to $OUT/results.md"
