#!/usr/bin/env bash
# Benchmark of the event pipeline through real Dapr sidecars, the outbox relay and the scheduler.
# Not a test: it measures and reports; only a lost event (or a failed start) makes it fail.
#
# Usage: scripts/bench-pipeline.sh
#
# What it does, in one run:
#   1. builds the release binaries (todo-mcp, todo-scheduler, todo-bench) and daprd plus the
#      Dapr scheduler service (scripts/daprd.sh build; a no-op when cached);
#   2. starts the private PostgreSQL if it is not running (left running at the end, like
#      scripts/bench.sh does) and recreates the database $PIPELINE_DB; starts a Redis of its own
#      (scripts/redis.sh with TODO_REDIS_DIR=.cache/redis-pipeline, port $PIPELINE_REDIS_PORT;
#      stopped at the end) and FLUSHALLs it, so that no stream, consumer group or state of an
#      earlier run is replayed, and so that the test suite's Redis (which the tests FLUSHALL)
#      and this run cannot disturb each other. Resources are generated from components/ (the
#      Redis address, a secrets file with `jwt-secret` and `database-url`, app-id `bench-sink`
#      added to the pub/sub scopes, `bench-calls` to what the scheduler may publish; resiliency
#      and the cron bindings, `@every 1m`, as they are);
#   3. the outbox relay: `todo-mcp --transport http --events dapr` beside its daprd (the
#      per-user fair share and quotas off: one user drives the load)
#      (app-id mcp-server) relays its outbox to topic `tasks`; `todo-bench pipeline sink` beside
#      its own daprd (app-id bench-sink) records when each event arrives.
#        a. commit-to-delivery latency at $PIPELINE_RATE events/s for $PIPELINE_DURATION s, for
#           each producer in $PIPELINE_PRODUCERS: `mcp` (add_task calls through the MCP endpoint:
#           the commit wakes the relay) and `sql` (rows inserted into `outbox` by another process:
#           the relay finds them at its next poll). Zero loss required;
#        b. throughput: $PIPELINE_DRAIN_EVENTS events committed in one transaction, relayed until
#           all have arrived; again with the sink's daprd stopped until the relay is done (the
#           relay's own ceiling, then the subscriber's); then again to a sink that takes one
#           event per request (no bulk subscription) and to one its sidecar calls over Dapr's
#           gRPC app callback (--app-protocol grpc), for the CPU each way of delivering costs per
#           event;
#        c. `redis-benchmark` XADD on the same Redis (tiny value, and a value the size of the
#           relay's events), the ceiling the relay's rate is put against;
#   4. the scheduler: the Dapr scheduler service (`dapr-scheduler`, fresh etcd), then
#      `todo-scheduler` beside its daprd (app-id scheduler, --scheduler-host-address) and the sink
#      (topic `notifications`) beside its daprd. First each kind of sidecar call the scheduler
#      makes is timed on its own (latency and CPU per call: what arming is made of). Then
#      synthetic `com.todo.task.created` events, one reminder per task, are published to `tasks`
#      through the sink's daprd:
#        a. $PIPELINE_BATCH reminders due tomorrow (pending; this also gives the arming rate that
#           sets how far ahead the next batches are scheduled);
#        b. a batch of $PIPELINE_BATCH reminders all due at the same instant, with
#           $PIPELINE_BATCH pending: lateness and time per firing;
#        c. $PIPELINE_REMINDERS reminders falling due within one minute ($PIPELINE_WINDOW s):
#           arming time, lateness p50/p99/max, notifications/s;
#        d. more reminders due tomorrow, up to $PIPELINE_PENDING pending; the resident memory
#           (VmRSS) of todo-scheduler (and of its daprd, dapr-scheduler, and Redis' used_memory)
#           before and after, and again after restarting todo-scheduler (it is stateless: what
#           it holds comes from the firing bursts before, not from the pending reminders);
#        e. the batch of (b) again, now with $PIPELINE_PENDING pending: the cost of a firing
#           against the number of pending reminders;
#   5. prints the report and writes it to target/bench/pipeline.md (raw JSON lines in
#      target/bench/pipeline.jsonl, every process' log in target/bench/pipeline/).
#
# Environment (defaults in brackets):
#   PIPELINE_DURATION      seconds of steady load per producer [60]
#   PIPELINE_RATE          events per second of the steady load [500]
#   PIPELINE_PRODUCERS     producers of the steady load, among "mcp sql" ["mcp sql"]
#   PIPELINE_DRAIN_EVENTS  events committed at once for the throughput run [50000]
#   PIPELINE_REMINDERS     reminders due within one minute [10000]
#   PIPELINE_WINDOW        seconds those are spread over [60]
#   PIPELINE_PENDING       pending reminders for the memory and cost-per-firing runs [100000]
#   PIPELINE_BATCH         reminders due at one instant, and the small pending count [1000]
#   PIPELINE_PHASES        what to run, among "relay scheduler" ["relay scheduler"]
#   PIPELINE_DB            database name, dropped and recreated [todo_pipeline]
#   PIPELINE_PENDING_PER_TASK  reminders per task for the pending ones (fewer events) [1]
#   PIPELINE_REDIS_PORT    port of the benchmark's own Redis [56380]
#   PIPELINE_QUIET_WAIT    before each measurement wait up to this many seconds for an idle
#                          machine; 0 = don't [30]
#   PIPELINE_LOG           RUST_LOG of todo-mcp and todo-scheduler [info]
# A quick run: PIPELINE_DURATION=10 PIPELINE_DRAIN_EVENTS=5000 PIPELINE_REMINDERS=1000 \
#   PIPELINE_PENDING=5000 PIPELINE_BATCH=200 scripts/bench-pipeline.sh
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIPELINE_DURATION="${PIPELINE_DURATION:-60}"
PIPELINE_RATE="${PIPELINE_RATE:-500}"
PIPELINE_PRODUCERS="${PIPELINE_PRODUCERS:-mcp sql}"
PIPELINE_DRAIN_EVENTS="${PIPELINE_DRAIN_EVENTS:-50000}"
PIPELINE_REMINDERS="${PIPELINE_REMINDERS:-10000}"
PIPELINE_WINDOW="${PIPELINE_WINDOW:-60}"
PIPELINE_PENDING="${PIPELINE_PENDING:-100000}"
PIPELINE_BATCH="${PIPELINE_BATCH:-1000}"
PIPELINE_PHASES="${PIPELINE_PHASES:-relay scheduler}"
PIPELINE_DB="${PIPELINE_DB:-todo_pipeline}"
PIPELINE_PENDING_PER_TASK="${PIPELINE_PENDING_PER_TASK:-1}"
PIPELINE_REDIS_PORT="${PIPELINE_REDIS_PORT:-56380}"
PIPELINE_QUIET_WAIT="${PIPELINE_QUIET_WAIT:-30}"
PIPELINE_LOG="${PIPELINE_LOG:-info}"

positive() { [[ "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || die "$1 must be a positive integer (got '$2')"; }
positive PIPELINE_DURATION "$PIPELINE_DURATION"
positive PIPELINE_RATE "$PIPELINE_RATE"
positive PIPELINE_DRAIN_EVENTS "$PIPELINE_DRAIN_EVENTS"
positive PIPELINE_REMINDERS "$PIPELINE_REMINDERS"
positive PIPELINE_WINDOW "$PIPELINE_WINDOW"
positive PIPELINE_PENDING "$PIPELINE_PENDING"
positive PIPELINE_BATCH "$PIPELINE_BATCH"
((PIPELINE_PENDING > PIPELINE_BATCH)) || die "PIPELINE_PENDING must exceed PIPELINE_BATCH"
positive PIPELINE_PENDING_PER_TASK "$PIPELINE_PENDING_PER_TASK"
[[ "$PIPELINE_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "PIPELINE_DB must be a plain lower-case identifier"
[[ "$PIPELINE_QUIET_WAIT" =~ ^[0-9]+$ ]] || die "PIPELINE_QUIET_WAIT must be a whole number of seconds"
for p in $PIPELINE_PRODUCERS; do
    [[ "$p" == mcp || "$p" == sql ]] || die "PIPELINE_PRODUCERS: unknown producer '$p'"
done
phase_on() { [[ " $PIPELINE_PHASES " == *" $1 "* ]]; }

cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="$TARGET_DIR/bench"
RUN="$OUT/pipeline"
RESULTS="$OUT/pipeline.jsonl"
rm -rf "$RUN"
mkdir -p "$RUN"
: >"$RESULTS"
started_at=$SECONDS

# --- helpers ----------------------------------------------------------------------------------

# Before a measurement: settled = < 15% busy, as our own idle processes stay running.
wait_quiet() { wait_for_idle "$PIPELINE_QUIET_WAIT" 15; }

# http_code URL: the HTTP status of a GET (000 when nothing answers).
http_code() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}
http_get() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }

record() {
    printf '%s\n' "$1" >>"$RESULTS"
    log "result: ${1:0:400}"
}

# What every sidecar presents to its app, and every app requires.
APP_TOKEN="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")"

# Processes this script started, newest last: stopped in reverse order at exit.
PIDS=()
NAMES=()
# start NAME LOG ENV... -- CMD...: starts CMD in the background with the extra environment.
start() {
    local name="$1" logf="$2"
    shift 2
    local envs=()
    while [[ "$1" != -- ]]; do
        envs+=("$1")
        shift
    done
    shift
    # A clean environment for what we start: nothing of the caller's Dapr or server settings,
    # and one app token for every sidecar and app (the services refuse to start without one).
    env -u DAPR_HTTP_PORT -u DAPR_GRPC_PORT -u DAPR_API_TOKEN -u DATABASE_URL \
        -u RUST_LOG -u TODO_JWT_SECRET -u TODO_EVENTS -u TODO_LISTEN -u TODO_APP_LISTEN \
        APP_API_TOKEN="$APP_TOKEN" "${envs[@]}" "$@" >"$logf" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
    LAST_PID=$!
}

stop_pid() { # pid name
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$2 ($pid) did not stop in 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}" "${NAMES[$i]}"
    done
    PIDS=()
    NAMES=()
}
# shellcheck disable=SC2317 # called from the EXIT trap; redefined once our Redis is started
stop_redis() { :; }
trap 'stop_all; stop_redis' EXIT

alive_or_die() { # pid name log
    kill -0 "$1" 2>/dev/null || { tail -30 "$3" >&2; die "$2 exited; log: $3"; }
}

# wait_http URL WANT NAME PID LOG [timeout]: until GET URL answers WANT.
wait_http() {
    local url="$1" want="$2" name="$3" pid="$4" logf="$5" timeout_s="${6:-60}"
    local deadline=$((SECONDS + timeout_s))
    until [[ "$(http_code "$url")" == "$want" ]]; do
        alive_or_die "$pid" "$name" "$logf"
        ((SECONDS < deadline)) || { tail -30 "$logf" >&2; die "timed out waiting for $name ($url)"; }
        sleep 0.2
    done
}

# wait_subscribed HTTP_PORT TOPIC NAME: until daprd reports a subscription to TOPIC.
wait_subscribed() {
    local deadline=$((SECONDS + 60))
    until http_get "http://127.0.0.1:$1/v1.0/metadata" 2>/dev/null | grep -q "\"topic\":\"$2\""; do
        ((SECONDS < deadline)) || die "daprd of $3 did not subscribe to $2 within 60 s"
        sleep 0.3
    done
}

# start_daprd APP_ID APP_PORT LOG [extra daprd args...]: sets DAPRD_HTTP, DAPRD_GRPC, DAPRD_PID.
start_daprd() {
    local app_id="$1" app_port="$2" logf="$3"
    shift 3
    DAPRD_HTTP="$(free_port)"
    DAPRD_GRPC="$(free_port)"
    start "daprd $app_id" "$logf" -- "$DAPRD" \
        --app-id "$app_id" --app-port "$app_port" --app-protocol http \
        --dapr-http-port "$DAPRD_HTTP" --dapr-grpc-port "$DAPRD_GRPC" \
        --enable-metrics=false --resources-path "$RESOURCES" --log-level info \
        --dapr-graceful-shutdown-seconds 2 "$@"
    DAPRD_PID=$LAST_PID
    wait_http "http://127.0.0.1:$DAPRD_HTTP/v1.0/healthz/outbound" 204 "daprd $app_id" "$DAPRD_PID" "$logf"
}

# start_sink NAME TOPICS [grpc|one-by-one]: the sink and its daprd (app-id bench-sink), called
# over HTTP with bulk subscriptions (as the services subscribe), with "one-by-one" over HTTP one
# event per request, or with "grpc" over Dapr's gRPC app callback; sets SINK_URL, SINK_PID,
# SINK_DAPR_HTTP, SINK_DAPR_GRPC, SINK_DAPR_PID.
start_sink() {
    local name="$1" topics="$2" protocol="${3:-http}" port app_port t
    local sink_args=() daprd_args=()
    port="$(free_port)"
    app_port="$port"
    if [[ "$protocol" == grpc ]]; then
        app_port="$(free_port)"
        sink_args=(--grpc-listen "127.0.0.1:$app_port")
        daprd_args=(--app-protocol grpc)
    elif [[ "$protocol" == one-by-one ]]; then
        sink_args=(--one-by-one)
    fi
    start "sink" "$RUN/$name.log" -- "$TB" pipeline sink --listen "127.0.0.1:$port" --topics "$topics" \
        "${sink_args[@]}"
    SINK_PID=$LAST_PID
    SINK_URL="http://127.0.0.1:$port"
    wait_http "$SINK_URL/healthz" 200 sink "$SINK_PID" "$RUN/$name.log"
    start_daprd bench-sink "$app_port" "$RUN/daprd-$name.log" "${daprd_args[@]}"
    SINK_DAPR_HTTP=$DAPRD_HTTP
    SINK_DAPR_GRPC=$DAPRD_GRPC
    SINK_DAPR_PID=$DAPRD_PID
    wait_http "http://127.0.0.1:$SINK_DAPR_HTTP/v1.0/healthz" 204 "daprd bench-sink" "$SINK_DAPR_PID" "$RUN/daprd-$name.log"
    for t in ${topics//,/ }; do
        wait_subscribed "$SINK_DAPR_HTTP" "$t" bench-sink
    done
}

redis_cmd() { "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# --- build --------------------------------------------------------------------------------------
log "building release binaries (cargo build --release -p todo-bench -p mcp-server -p todo-scheduler)"
cargo build --release -p todo-bench -p mcp-server -p todo-scheduler >&2 || die "build failed"
TB="$TARGET_DIR/release/todo-bench"
SERVER_BIN="$TARGET_DIR/release/todo-mcp"
SCHEDULER_BIN="$TARGET_DIR/release/todo-scheduler"
log "building daprd and the Dapr scheduler service if needed (scripts/daprd.sh build)"
dapr_env="$(bash "$REPO/scripts/daprd.sh" build)" || die "scripts/daprd.sh build failed"
DAPRD="$(grep '^DAPRD=' <<<"$dapr_env" | cut -d= -f2-)"
DAPR_SCHEDULER="$(grep '^DAPR_SCHEDULER=' <<<"$dapr_env" | cut -d= -f2-)"
DAPR_VERSION="$(grep '^DAPR_VERSION=' <<<"$dapr_env" | cut -d= -f2-)"
[[ -x "$DAPRD" && -x "$DAPR_SCHEDULER" ]] || die "no daprd/dapr-scheduler (got '$dapr_env')"

# --- PostgreSQL and Redis -------------------------------------------------------------------------
bash "$REPO/scripts/postgres.sh" start >/dev/null || die "cannot start PostgreSQL"
eval "$(bash "$REPO/scripts/postgres.sh" env --export)"
# A Redis of the benchmark's own: the test suite FLUSHALLs the shared one when it starts.
redis_sh() { TODO_REDIS_DIR="$CACHE_DIR/redis-pipeline" TODO_REDIS_PORT="$PIPELINE_REDIS_PORT" bash "$REPO/scripts/redis.sh" "$@"; }
redis_sh start >/dev/null || die "cannot start the benchmark's Redis (PIPELINE_REDIS_PORT=$PIPELINE_REDIS_PORT)"
stop_redis() { redis_sh stop >/dev/null 2>&1 || true; }
eval "$(redis_sh env --export)"
[[ -x "${REDIS_CLI:-}" && -x "${REDIS_BENCHMARK:-}" ]] || die "redis-cli/redis-benchmark not found"
REDIS_PID="$(redis_cmd INFO server | tr -d '\r' | awk -F: '/^process_id:/ { print $2 }')"
[[ -n "$REDIS_PID" ]] || die "cannot find the Redis server's pid"
[[ "$(redis_cmd FLUSHALL)" == OK ]] || die "FLUSHALL failed"

log "recreating database $PIPELINE_DB"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$PGDATABASE" \
    -c "DROP DATABASE IF EXISTS $PIPELINE_DB WITH (FORCE)" -c "CREATE DATABASE $PIPELINE_DB"
PIPELINE_URL="${DATABASE_URL%/*}/$PIPELINE_DB"
psql_run() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$PIPELINE_DB" "$@"; }

# --- Dapr resources, derived from components/ ------------------------------------------------------
RESOURCES="$RUN/resources"
SECRETS_FILE="$RUN/secrets.json" # beside the resources dir: daprd would load it as a resource
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
python3 - "$REPO/components" "$RESOURCES" "$SECRETS_FILE" "127.0.0.1:$REDIS_PORT" \
    "$JWT_SECRET" "$PIPELINE_URL" <<'EOF'
import json, pathlib, re, sys
src, dest, secrets, redis_host, jwt, db_url = sys.argv[1:]
dest = pathlib.Path(dest)
dest.mkdir(parents=True)
pathlib.Path(secrets).write_text(json.dumps({"jwt-secret": jwt, "database-url": db_url}))
for f in sorted(pathlib.Path(src).glob("*.yaml")):
    text = f.read_text()
    if "name: redisHost" in text:
        text, n = re.subn(r"(- name: redisHost\n\s+value: ).*", lambda m: m.group(1) + redis_host, text)
        assert n == 1, f"{f}: cannot set redisHost"
    if "type: secretstores.local.file" in text:
        assert text.count("./components/secrets.dev.json") == 1, f
        text = text.replace("./components/secrets.dev.json", secrets)
    if "type: pubsub.redis" in text:
        # The sink is a subscriber and publisher of its own. The timing of the scheduler's
        # sidecar calls publishes as the scheduler to a topic nobody reads, `bench-calls`.
        text = text.rstrip("\n") + "\n  - bench-sink\n"
        text, n = re.subn(r"(- name: publishingScopes\n\s+value: \"[^\"]*scheduler=[^;\"]*)",
                          lambda m: m.group(1) + ",bench-calls", text)
        assert n == 1, f"{f}: cannot let the scheduler publish to bench-calls"
    (dest / f.name).write_text(text)
EOF

# --- the outbox relay ---------------------------------------------------------------------------
if phase_on relay; then
    log "relay: starting the sink, todo-mcp --events dapr and their sidecars"
    start_sink sink-relay tasks
    MCP_APP_PORT="$(free_port)"
    start_daprd mcp-server "$MCP_APP_PORT" "$RUN/daprd-mcp.log"
    MCP_DAPR_HTTP=$DAPRD_HTTP
    MCP_DAPR_GRPC=$DAPRD_GRPC
    MCP_DAPR_PID=$DAPRD_PID
    MCP_PORT="$(free_port)"
    # The JWT secret and the database URL come from the secret store through the sidecar.
    start todo-mcp "$RUN/todo-mcp.log" DAPR_GRPC_PORT="$MCP_DAPR_GRPC" RUST_LOG="$PIPELINE_LOG" -- \
        "$SERVER_BIN" --transport http --listen "127.0.0.1:$MCP_PORT" \
        --app-listen "127.0.0.1:$MCP_APP_PORT" --events dapr \
        --rate-limit-per-second 0 --requests-in-flight-per-user 1024 --tasks-per-user 4000000000
    MCP_PID=$LAST_PID
    wait_http "http://127.0.0.1:$MCP_PORT/healthz" 200 todo-mcp "$MCP_PID" "$RUN/todo-mcp.log" 90
    wait_http "http://127.0.0.1:$MCP_DAPR_HTTP/v1.0/healthz" 204 "daprd mcp-server" "$MCP_DAPR_PID" "$RUN/daprd-mcp.log"
    wait_subscribed "$MCP_DAPR_HTTP" tasks mcp-server
    TOKEN="$("$TB" token --secret "$JWT_SECRET" --sub bench-relay --ttl 86400)"
    relay_watch=(--watch "todo-mcp=$MCP_PID" --watch "daprd-mcp=$MCP_DAPR_PID"
        --watch "daprd-sink=$SINK_DAPR_PID" --watch "sink=$SINK_PID" --watch "redis=$REDIS_PID")

    for mode in $PIPELINE_PRODUCERS; do
        log "relay latency: $mode producer, $PIPELINE_RATE events/s for $PIPELINE_DURATION s"
        wait_quiet
        line="$("$TB" pipeline relay-latency --mode "$mode" --rate "$PIPELINE_RATE" \
            --duration "$PIPELINE_DURATION" --sink "$SINK_URL" --database-url "$PIPELINE_URL" \
            --mcp-url "http://127.0.0.1:$MCP_PORT/mcp" --token "$TOKEN" \
            "${relay_watch[@]}" --label "$mode")" || die "relay-latency ($mode) failed"
        record "$line"
    done

    log "relay throughput: $PIPELINE_DRAIN_EVENTS events committed at once"
    wait_quiet
    line="$("$TB" pipeline relay-drain --database-url "$PIPELINE_URL" --sink "$SINK_URL" \
        --events "$PIPELINE_DRAIN_EVENTS" "${relay_watch[@]}" --label drain)" || die "relay-drain failed"
    record "$line"

    # On two cores the relay and the subscriber's sidecar share the machine: the relay's own
    # ceiling with the subscriber stopped until every event is published, then the subscriber's.
    log "relay throughput with the subscriber held until the relay is done"
    wait_quiet
    line="$("$TB" pipeline relay-drain --database-url "$PIPELINE_URL" --sink "$SINK_URL" \
        --events "$PIPELINE_DRAIN_EVENTS" "${relay_watch[@]}" --hold "$SINK_DAPR_PID" \
        --label drain-alone)" || die "relay-drain (held subscriber) failed"
    record "$line"

    # The same drain to a subscriber that takes one event per request (Dapr's default, the
    # services' before bulk subscriptions), and to one its sidecar calls over Dapr's gRPC app
    # callback: what each way of delivering costs per event (the services' choice, in the README).
    for protocol in one-by-one grpc; do
        log "relay throughput again, delivered $protocol"
        stop_pid "$SINK_DAPR_PID" "daprd bench-sink"
        stop_pid "$SINK_PID" sink
        start_sink "sink-relay-$protocol" tasks "$protocol"
        relay_watch=(--watch "todo-mcp=$MCP_PID" --watch "daprd-mcp=$MCP_DAPR_PID"
            --watch "daprd-sink=$SINK_DAPR_PID" --watch "sink=$SINK_PID" --watch "redis=$REDIS_PID")
        wait_quiet
        line="$("$TB" pipeline relay-drain --database-url "$PIPELINE_URL" --sink "$SINK_URL" \
            --events "$PIPELINE_DRAIN_EVENTS" "${relay_watch[@]}" --label "drain-$protocol")" ||
            die "relay-drain ($protocol) failed"
        record "$line"
    done

    # The XADDs daprd issues carry the event as one field: measure with that size too.
    EVENT_BYTES="$(psql_run -c "SELECT round(avg(length(envelope::text))) FROM outbox WHERE event_type = 'com.todo.task.created'")"
    for payload in 0 "${EVENT_BYTES:-600}"; do
        log "redis-benchmark XADD (value of $payload bytes)"
        wait_quiet
        line="$("$TB" pipeline xadd --redis-benchmark "$REDIS_BENCHMARK" --redis "127.0.0.1:$REDIS_PORT" \
            --payload-bytes "$payload" --label "xadd-$payload")" || die "redis-benchmark failed"
        record "$line"
    done
    log "relay done; stopping its processes"
    stop_all
fi

# --- the scheduler ------------------------------------------------------------------------------
if phase_on scheduler; then
    # The relay's streams are not the scheduler's business: start from an empty Redis again.
    [[ "$(redis_cmd FLUSHALL)" == OK ]] || die "FLUSHALL failed"
    log "scheduler: starting dapr-scheduler, todo-scheduler, the sink and their sidecars"
    SCHED_PORT="$(free_port)"
    start dapr-scheduler "$RUN/dapr-scheduler.log" -- "$DAPR_SCHEDULER" \
        --listen-address 127.0.0.1 --port "$SCHED_PORT" \
        --healthz-listen-address 127.0.0.1 --healthz-port "$(free_port)" \
        --metrics-listen-address 127.0.0.1 --metrics-port "$(free_port)" \
        --etcd-data-dir "$RUN/etcd" --etcd-client-listen-address 127.0.0.1 \
        --etcd-client-port "$(free_port)" \
        --etcd-initial-cluster "dapr-scheduler-server-0=http://127.0.0.1:$(free_port)" \
        --id dapr-scheduler-server-0 --log-level info
    DAPR_SCHED_PID=$LAST_PID
    deadline=$((SECONDS + 60))
    until port_is_open 127.0.0.1 "$SCHED_PORT"; do
        alive_or_die "$DAPR_SCHED_PID" dapr-scheduler "$RUN/dapr-scheduler.log"
        ((SECONDS < deadline)) || die "dapr-scheduler did not listen within 60 s"
        sleep 0.2
    done

    start_sink sink-scheduler notifications
    APP_PORT="$(free_port)"
    start_daprd scheduler "$APP_PORT" "$RUN/daprd-scheduler.log" \
        --scheduler-host-address "127.0.0.1:$SCHED_PORT"
    SCHED_DAPR_HTTP=$DAPRD_HTTP
    SCHED_DAPR_GRPC=$DAPRD_GRPC
    SCHED_DAPR_PID=$DAPRD_PID
    start_scheduler_app() {
        start todo-scheduler "$RUN/todo-scheduler.log" DAPR_GRPC_PORT="$SCHED_DAPR_GRPC" RUST_LOG="$PIPELINE_LOG" -- \
            "$SCHEDULER_BIN" --listen "127.0.0.1:$APP_PORT"
        SCHEDULER_PID=$LAST_PID
        wait_http "http://127.0.0.1:$APP_PORT/healthz" 200 todo-scheduler "$SCHEDULER_PID" "$RUN/todo-scheduler.log"
    }
    start_scheduler_app
    wait_http "http://127.0.0.1:$SCHED_DAPR_HTTP/v1.0/healthz" 204 "daprd scheduler" "$SCHED_DAPR_PID" "$RUN/daprd-scheduler.log"
    wait_subscribed "$SCHED_DAPR_HTTP" tasks scheduler

    set_watch() {
        sched_watch=(--watch "todo-scheduler=$SCHEDULER_PID" --watch "daprd-scheduler=$SCHED_DAPR_PID"
            --watch "dapr-scheduler=$DAPR_SCHED_PID" --watch "daprd-sink=$SINK_DAPR_PID"
            --watch "sink=$SINK_PID" --watch "redis=$REDIS_PID")
        mem_watch=(--watch "todo-scheduler=$SCHEDULER_PID" --watch "daprd-scheduler=$SCHED_DAPR_PID"
            --watch "dapr-scheduler=$DAPR_SCHED_PID")
    }
    set_watch
    memory() { # label pending
        local line
        line="$("$TB" pipeline memory "${mem_watch[@]}" --redis "127.0.0.1:$REDIS_PORT" \
            --pending "$2" --label "$1")" || die "memory sample failed"
        record "$line"
    }
    reminders() { # label owner tasks start_in spread pending_before [more args]
        local label="$1" owner="$2" tasks="$3" start_in="$4" spread="$5" pending="$6"
        shift 6
        "$TB" pipeline reminders --dapr-grpc-port "$SINK_DAPR_GRPC" --redis "127.0.0.1:$REDIS_PORT" \
            --sink "$SINK_URL" --tasks "$tasks" --start-in "$start_in" \
            --spread "$spread" --owner "$owner" --pending-before "$pending" --label "$label" \
            "${sched_watch[@]}" "$@"
    }
    # Seconds ahead to schedule N reminders so that arming them (at the rate measured first)
    # is over, with a margin, before the first is due.
    lead_for() { awk -v n="$1" -v r="$ARMING_RATE" 'BEGIN { printf "%d", 1.5 * n / (r > 0 ? r : 50) + 15 }'; }
    TOMORROW=86400 # pending reminders: due over the next day's 24 hours
    # $PIPELINE_BATCH reminders all due at the same instant, with $1 pending (owner $2): the
    # lateness of a burst and the time per firing, against the number pending.
    batch_at_one_instant() {
        local pending="$1" owner="$2" lead
        lead="$(lead_for "$PIPELINE_BATCH")"
        log "scheduler: $PIPELINE_BATCH reminders due at one instant, $lead s ahead ($pending pending)"
        wait_quiet
        line="$(reminders "batch, $pending pending" "$owner" "$PIPELINE_BATCH" "$lead" 0 \
            "$pending" --wait-fired)" || die "batch failed"
        record "$line"
    }

    memory "started" 0
    log "scheduler: timing each kind of sidecar call it makes, one at a time"
    wait_quiet
    line="$("$TB" pipeline dapr-calls --dapr-grpc-port "$SCHED_DAPR_GRPC" --watch "daprd-scheduler=$SCHED_DAPR_PID" \
        --watch "dapr-scheduler=$DAPR_SCHED_PID" --watch "redis=$REDIS_PID")" || die "dapr-calls failed"
    record "$line"
    log "scheduler: arming $PIPELINE_BATCH reminders due tomorrow"
    wait_quiet
    line="$(reminders "pending $PIPELINE_BATCH" bench-pending "$PIPELINE_BATCH" "$TOMORROW" "$TOMORROW" 0)" \
        || die "arming failed"
    record "$line"
    ARMING_RATE="$(json_num "$line" arming_rate)"
    memory "$PIPELINE_BATCH pending" "$PIPELINE_BATCH"

    batch_at_one_instant "$PIPELINE_BATCH" bench-batch-small

    lead="$(lead_for "$PIPELINE_REMINDERS")"
    log "scheduler: $PIPELINE_REMINDERS reminders due within $PIPELINE_WINDOW s, from $lead s ahead"
    wait_quiet
    line="$(reminders "$PIPELINE_REMINDERS in ${PIPELINE_WINDOW} s" bench-minute "$PIPELINE_REMINDERS" \
        "$lead" "$PIPELINE_WINDOW" "$PIPELINE_BATCH" --wait-fired)" || die "the minute batch failed"
    record "$line"

    more_tasks=$(((PIPELINE_PENDING - PIPELINE_BATCH) / PIPELINE_PENDING_PER_TASK))
    more=$((more_tasks * PIPELINE_PENDING_PER_TASK))
    PIPELINE_PENDING=$((PIPELINE_BATCH + more))
    log "scheduler: arming $more more reminders due tomorrow (to $PIPELINE_PENDING pending)"
    wait_quiet
    line="$(reminders "pending $PIPELINE_PENDING" bench-pending "$more_tasks" "$TOMORROW" "$TOMORROW" \
        "$PIPELINE_BATCH" --per-task "$PIPELINE_PENDING_PER_TASK")" || die "arming failed"
    record "$line"
    memory "$PIPELINE_PENDING pending" "$PIPELINE_PENDING"
    # todo-scheduler keeps nothing per reminder; what it holds comes from the firing bursts
    # before (a connection to its sidecar per concurrent firing). Restarted, it shows what the
    # pending reminders themselves cost it, and the next batch starts from the same state as the
    # first one did.
    log "restarting todo-scheduler (stateless) with $PIPELINE_PENDING reminders pending"
    stop_pid "$SCHEDULER_PID" todo-scheduler
    start_scheduler_app
    set_watch
    sleep 2
    memory "$PIPELINE_PENDING pending, todo-scheduler restarted" "$PIPELINE_PENDING"

    batch_at_one_instant "$PIPELINE_PENDING" bench-batch-large
    memory "$PIPELINE_PENDING pending, after the batch" "$PIPELINE_PENDING"
    log "scheduler done; stopping its processes"
    stop_all
fi

# --- report -------------------------------------------------------------------------------------
rev="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ]] && rev="$rev (dirty)"
pg_setting() { psql_run -c "SHOW $1"; }
header="## Event pipeline benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $rev

- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GB; every process of the pipeline shares the cores
- Dapr $DAPR_VERSION (daprd and dapr-scheduler built by scripts/daprd.sh), Redis $(redis_cmd INFO server | tr -d '\r' | awk -F: '/^redis_version:/ { print $2 }') (the benchmark's own, flushed), PostgreSQL $(pg_setting server_version | cut -d' ' -f1) (fsync=$(pg_setting fsync), synchronous_commit=$(pg_setting synchronous_commit)); components from components/ (resiliency: retry until delivered; cron sweeps @every 1m)
- release builds; RUST_LOG=$PIPELINE_LOG for todo-mcp and todo-scheduler
- settings: PIPELINE_RATE=$PIPELINE_RATE PIPELINE_DURATION=$PIPELINE_DURATION PIPELINE_PRODUCERS=\"$PIPELINE_PRODUCERS\" PIPELINE_DRAIN_EVENTS=$PIPELINE_DRAIN_EVENTS PIPELINE_REMINDERS=$PIPELINE_REMINDERS PIPELINE_WINDOW=$PIPELINE_WINDOW PIPELINE_PENDING=$PIPELINE_PENDING PIPELINE_PENDING_PER_TASK=$PIPELINE_PENDING_PER_TASK PIPELINE_BATCH=$PIPELINE_BATCH
- wall time of the run: $((SECONDS - started_at)) s"
"$TB" report --results "$RESULTS" --md "$OUT/pipeline.md" --header "$header"
log "report written to $OUT/pipeline.md"
