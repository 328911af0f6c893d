#!/usr/bin/env bash
# Fairness benchmark of todo-mcp's /mcp. Not a test: it measures and reports.
#
# Usage: scripts/bench-fairness.sh
#
# User A floods add_task from $FAIRNESS_CLIENTS connections while user B makes sequential
# list_tasks calls; B's p99 is compared with its p99 on the idle server. Run twice, each on a
# todo-mcp of its own: with the fair share as the server configures it by default (the run the
# target is judged on), then with the fair share off (the same run's baseline: what it buys).
# About 90 s after the build; the environment variables below scale it.
#
# What it does, in one run:
#   1. builds todo-mcp and todo-bench ($FAIRNESS_PROFILE, release by default);
#   2. starts the private PostgreSQL cluster if it is not running (scripts/postgres.sh start) and
#      recreates the database $FAIRNESS_DB. Both are LEFT in place at the end, as with
#      scripts/bench.sh; only the todo-mcp and todo-bench processes it starts are stopped (trap);
#   3. for each server (`on`: the fair share's defaults; `off`: --rate-limit-per-second 0
#      --requests-in-flight-per-user 1024), on a free loopback port, with --events embedded and
#      --tasks-per-user $FAIRNESS_TASK_QUOTA (A creates tens of thousands of tasks; the default
#      quota of 10,000 would turn its calls into tool errors mid-run):
#      a. (first server only) seeds B with $FAIRNESS_TASKS tasks through the server;
#      b. idle: B's $FAIRNESS_CALLS list_tasks calls, one at a time, one every
#         $FAIRNESS_INTERVAL_MS ms (below the default rate limit, as a user's client would be),
#         after a tenth as many unmeasured;
#      c. flood: A's $FAIRNESS_CLIENTS closed-loop clients call add_task; after $FAIRNESS_WARMUP s
#         B's calls run again as in b; when they are done A is stopped (SIGTERM), its window
#         being B's run. A's HTTP 429 answers are counted as refused, not errors, and
#         Retry-After is ignored (FAIRNESS_ON_429=count: a client that does not back off) or
#         honoured (FAIRNESS_ON_429=wait);
#      each part after a CHECKPOINT, with the outbox drained in between;
#   4. prints the report and writes it to target/bench/fairness.md (raw JSON lines in
#      target/bench/fairness.jsonl, the servers' log in target/bench/fairness-server.log).
#
# Target (informational; the verdict does not change the exit status): with the fair share on,
# B's p99 under the flood <= 2x its p99 on the idle server. The script exits non-zero only when
# something failed: a build, a start, or a call that failed (a 429 to A is not a failure).
#
# Environment:
#   FAIRNESS_TASKS        tasks seeded for B (default 200)
#   FAIRNESS_CALLS        B's measured calls per part (default 500)
#   FAIRNESS_INTERVAL_MS  B's time between the starts of two calls (default 20, i.e. 50 calls/s)
#   FAIRNESS_CLIENTS      A's concurrent connections (default 32)
#   FAIRNESS_WARMUP       seconds of A's flood before B starts (default 3)
#   FAIRNESS_ON_429       A on a 429: count (next call at once) or wait (Retry-After) (default
#                         count)
#   FAIRNESS_TASK_QUOTA   --tasks-per-user of both servers (default 10000000)
#   FAIRNESS_SERVERS      which servers to run, in order (default "on off")
#   FAIRNESS_ON_FLAGS     more todo-mcp flags for the `on` server, to try another share (e.g.
#                         "--requests-in-flight-per-user 2"); default none: the defaults
#   FAIRNESS_PROFILE      release or debug (default release)
#   FAIRNESS_DB           database name (default todo_bench_fairness; dropped and recreated)
#   FAIRNESS_QUIET_WAIT   before each server's runs, wait up to this many seconds for the machine
#                         to be idle; 0 = don't (default 30)
#
# CPU: 2 cores are shared by both load generators, PostgreSQL and todo-mcp; A's row reports how
# the cores were spent over its window, sampled from /proc.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FAIRNESS_TASKS="${FAIRNESS_TASKS:-200}"
FAIRNESS_CALLS="${FAIRNESS_CALLS:-500}"
FAIRNESS_INTERVAL_MS="${FAIRNESS_INTERVAL_MS:-20}"
FAIRNESS_CLIENTS="${FAIRNESS_CLIENTS:-32}"
FAIRNESS_WARMUP="${FAIRNESS_WARMUP:-3}"
FAIRNESS_ON_429="${FAIRNESS_ON_429:-count}"
FAIRNESS_TASK_QUOTA="${FAIRNESS_TASK_QUOTA:-10000000}"
FAIRNESS_SERVERS="${FAIRNESS_SERVERS:-on off}"
FAIRNESS_ON_FLAGS="${FAIRNESS_ON_FLAGS:-}"
FAIRNESS_PROFILE="${FAIRNESS_PROFILE:-release}"
FAIRNESS_DB="${FAIRNESS_DB:-todo_bench_fairness}"
FAIRNESS_QUIET_WAIT="${FAIRNESS_QUIET_WAIT:-30}"

[[ "$FAIRNESS_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "FAIRNESS_DB must be a plain lower-case identifier"
for var in FAIRNESS_TASKS FAIRNESS_CALLS FAIRNESS_CLIENTS FAIRNESS_TASK_QUOTA; do
    [[ "${!var}" =~ ^[0-9]+$ && "${!var}" -gt 0 ]] || die "$var must be a positive integer"
done
for var in FAIRNESS_INTERVAL_MS FAIRNESS_WARMUP FAIRNESS_QUIET_WAIT; do
    [[ "${!var}" =~ ^[0-9]+$ ]] || die "$var must be a whole number"
done
[[ "$FAIRNESS_ON_429" == count || "$FAIRNESS_ON_429" == wait ]] || die "FAIRNESS_ON_429 must be count or wait"
[[ "$FAIRNESS_PROFILE" == release || "$FAIRNESS_PROFILE" == debug ]] || die "FAIRNESS_PROFILE must be release or debug"

cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="$TARGET_DIR/bench"
mkdir -p "$OUT"
RESULTS="$OUT/fairness.jsonl"
: >"$RESULTS"
STARTED=$SECONDS

# --- build ----------------------------------------------------------------------------------
build_args=(-p mcp-server -p todo-bench)
[[ "$FAIRNESS_PROFILE" == release ]] && build_args=(--release "${build_args[@]}")
log "building $FAIRNESS_PROFILE binaries (cargo build ${build_args[*]})"
cargo build "${build_args[@]}" >&2 || die "build failed"
SERVER_BIN="$TARGET_DIR/$FAIRNESS_PROFILE/todo-mcp"
TB="$TARGET_DIR/$FAIRNESS_PROFILE/todo-bench"
BUILT=$SECONDS

# --- PostgreSQL -------------------------------------------------------------------------------
bash "$REPO/scripts/postgres.sh" start >/dev/null || die "cannot start PostgreSQL"
eval "$(bash "$REPO/scripts/postgres.sh" env --export)"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$PGDATABASE" "$@"; }
psql_bench() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$FAIRNESS_DB" "$@"; }
log "recreating database $FAIRNESS_DB"
psql_admin -c "DROP DATABASE IF EXISTS $FAIRNESS_DB WITH (FORCE)" -c "CREATE DATABASE $FAIRNESS_DB"
DB_URL="${DATABASE_URL%/*}/$FAIRNESS_DB"

# --- servers and load -------------------------------------------------------------------------
TODO_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
export TODO_JWT_SECRET
unset DAPR_HTTP_PORT DAPR_GRPC_PORT # no sidecar: events stay in-process (--events embedded)
# The `on` server must run with the server's own defaults, whatever this shell sets.
unset TODO_RATE_LIMIT_PER_SECOND TODO_RATE_LIMIT_BURST TODO_REQUESTS_IN_FLIGHT_PER_USER \
    TODO_DB_MAX_CONNECTIONS TODO_TASKS_PER_USER

# The default of a todo-mcp option, as its --help states it ("" when it has none).
help_default() {
    "$SERVER_BIN" --help | awk -v opt="--$1 " '
        index($0, opt) { on = 1; next }
        on && /^ *--/ { exit }
        on && match($0, /\[default: [^]]*\]/) { print substr($0, RSTART + 10, RLENGTH - 11); exit }'
}
RATE_DEFAULT="$(help_default rate-limit-per-second)"
BURST_DEFAULT="$(help_default rate-limit-burst)"
POOL_DEFAULT="$(help_default db-max-connections)"
QUOTA_DEFAULT="$(help_default tasks-per-user)"

declare -A SERVER_FLAGS=(
    [on]="--tasks-per-user $FAIRNESS_TASK_QUOTA${FAIRNESS_ON_FLAGS:+ $FAIRNESS_ON_FLAGS}"
    [off]="--rate-limit-per-second 0 --requests-in-flight-per-user 1024 --tasks-per-user $FAIRNESS_TASK_QUOTA"
)
read -r -a SERVERS <<<"$FAIRNESS_SERVERS"
for server in "${SERVERS[@]}"; do
    [[ -n "${SERVER_FLAGS[$server]:-}" ]] || die "FAIRNESS_SERVERS: unknown server '$server' (on, off)"
done
((${#SERVERS[@]} > 0)) || die "FAIRNESS_SERVERS is empty"

SERVER_PID=""
FLOOD_PID=""
: >"$OUT/fairness-server.log"
start_server() { # flags...
    local port
    port="$(free_port)"
    MCP_URL="http://127.0.0.1:$port/mcp"
    "$SERVER_BIN" --transport http --listen "127.0.0.1:$port" --database-url "$DB_URL" \
        --events embedded "$@" >>"$OUT/fairness-server.log" 2>&1 &
    SERVER_PID=$!
    wait_for_port 127.0.0.1 "$port" 60 || die "todo-mcp did not start; see $OUT/fairness-server.log"
    kill -0 "$SERVER_PID" 2>/dev/null || die "todo-mcp exited; see $OUT/fairness-server.log"
}
stop_pid() { # pid
    if [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop_pid "$FLOOD_PID"
    stop_pid "$SERVER_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

A_TOKEN="$("$TB" token --sub fairness-a)"
B_TOKEN="$("$TB" token --sub fairness-b)"
ADD_ARGS='{"title":"Flood task {n}","priority":"high","tags":["work","flood"],"due":"2030-06-01T17:00","time_zone":"Europe/Paris"}'
B_WARM=$((FAIRNESS_CALLS / 10))

checkpoint() { psql_bench -c "CHECKPOINT"; }
outbox_backlog() { psql_bench -At -c "SELECT count(*) FROM outbox WHERE published_at IS NULL"; }
outbox_empty() { [[ "$(outbox_backlog)" == 0 ]]; }
wait_outbox_drained() {
    wait_until 120 0.5 outbox_empty || die "the outbox relay did not drain the outbox within 120 s"
}

# Appends one result line, with the server's flags; fails the script on errors.
record() { # server line
    local line="${2%\}},\"server_flags\":\"${SERVER_FLAGS[$1]}\"}"
    printf '%s\n' "$line" >>"$RESULTS"
    printf '%s\n' "$line" >&2
    grep -q '"errors":0[,}]' <<<"$line" || die "errors in the run above; results so far in $RESULTS"
}

http_run() { # token tool args label [more todo-bench args]
    local token="$1" tool="$2" args="$3" label="$4"
    shift 4
    "$TB" http --url "$MCP_URL" --token "$token" --server-pid "$SERVER_PID" \
        --tool "$tool" --args "$args" --label "$label" "$@"
}

# B's sequential list_tasks: the first page (50 of its tasks, the count, their reminders).
b_calls() { # label
    http_run "$B_TOKEN" list_tasks '{}' "$1" --clients 1 --calls "$FAIRNESS_CALLS" \
        --warmup-calls "$B_WARM" --interval-ms "$FAIRNESS_INTERVAL_MS" --on-429 count
}

for server in "${SERVERS[@]}"; do
    wait_for_idle "$FAIRNESS_QUIET_WAIT" 10
    log "server with the fair share $server: todo-mcp ${SERVER_FLAGS[$server]}"
    # shellcheck disable=SC2086 # the flags are words
    start_server ${SERVER_FLAGS[$server]}
    if [[ "$server" == "${SERVERS[0]}" ]]; then
        log "seeding $FAIRNESS_TASKS tasks for B"
        seed="$(http_run "$B_TOKEN" add_task "$ADD_ARGS" seed --clients 1 \
            --calls "$FAIRNESS_TASKS" --on-429 wait)"
        grep -q '"errors":0[,}]' <<<"$seed" || die "seeding failed: $seed"
        wait_outbox_drained
        psql_bench -c "VACUUM ANALYZE"
    fi

    log "B alone: $FAIRNESS_CALLS list_tasks, one every $FAIRNESS_INTERVAL_MS ms"
    checkpoint
    record "$server" "$(b_calls "fairness:$server:idle")"

    log "A floods add_task from $FAIRNESS_CLIENTS connections; B again after ${FAIRNESS_WARMUP} s"
    checkpoint
    flood_out="$OUT/fairness-flood.json"
    # A runs until B is done (SIGTERM); the duration only bounds a run whose B never ends.
    # todo-bench itself in the background (not through a function, whose subshell would take
    # the signal), so that SIGTERM reaches it.
    "$TB" http --url "$MCP_URL" --token "$A_TOKEN" --server-pid "$SERVER_PID" --tool add_task \
        --args "$ADD_ARGS" --label "fairness:$server:flood" --clients "$FAIRNESS_CLIENTS" \
        --warmup "$FAIRNESS_WARMUP" --duration 600 --on-429 "$FAIRNESS_ON_429" >"$flood_out" &
    FLOOD_PID=$!
    sleep "$FAIRNESS_WARMUP"
    probe="$(b_calls "fairness:$server:probe")"
    stop_pid "$FLOOD_PID"
    FLOOD_PID=""
    [[ -s "$flood_out" ]] || die "A's load generator printed no result"
    record "$server" "$(cat "$flood_out")"
    record "$server" "$probe"

    wait_outbox_drained
    stop_pid "$SERVER_PID"
    SERVER_PID=""
done

# --- report -----------------------------------------------------------------------------------
pg_setting() { psql_bench -At -c "SHOW $1"; }
a_tasks="$(psql_bench -At -c "SELECT count(*) FROM tasks WHERE owner = 'fairness-a'")"
rev="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ]] && rev="$rev (dirty)"
header="## todo-mcp fairness benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $rev

- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GB; both load generators, PostgreSQL and todo-mcp share the cores
- PostgreSQL $(pg_setting server_version | cut -d' ' -f1): fsync=$(pg_setting fsync), synchronous_commit=$(pg_setting synchronous_commit); database $FAIRNESS_DB created fresh
- todo-mcp ($FAIRNESS_PROFILE build): --transport http --events embedded (no sidecar), one server per row, started fresh; fair share **on** = the server's defaults${FAIRNESS_ON_FLAGS:+ except $FAIRNESS_ON_FLAGS}: --rate-limit-per-second ${RATE_DEFAULT:-?}, --rate-limit-burst ${BURST_DEFAULT:-?}, --requests-in-flight-per-user half of --db-max-connections ${POOL_DEFAULT:-?}, at most the $(nproc) cores; **off** = no rate limit and more requests in flight than A has connections
- quota: --tasks-per-user $FAIRNESS_TASK_QUOTA on both servers (the default, ${QUOTA_DEFAULT:-?}, would refuse A's add_task with a tool error partway); A created $a_tasks tasks in all
- B (user fairness-b): $FAIRNESS_TASKS tasks seeded; \`list_tasks {}\` (the first page of 50, the count, their reminders), $FAIRNESS_CALLS measured calls after $B_WARM unmeasured, one every $FAIRNESS_INTERVAL_MS ms, idle and then under the flood
- A (user fairness-a): $FAIRNESS_CLIENTS connections calling \`add_task\` \`$ADD_ARGS\` back to back, ${FAIRNESS_WARMUP} s before B starts; on HTTP 429: $FAIRNESS_ON_429 ($([[ "$FAIRNESS_ON_429" == count ]] && echo "Retry-After ignored" || echo "Retry-After honoured"))
- CPU% = percent of one core over A's window (max $(($(nproc) * 100))), from /proc
- runtime: $((SECONDS - BUILT)) s after a $((BUILT - STARTED)) s build"
"$TB" report --results "$RESULTS" --md "$OUT/fairness.md" --header "$header"
log "report written to $OUT/fairness.md"
