#!/usr/bin/env bash
# A private Redis server for this checkout's tests (Dapr pub/sub and state
# store). Never touches a system Redis (own port, own dir, no persistence).
#
# Usage: scripts/redis.sh start|stop|status|env [--export]
#
#   start   install Debian's redis-server if missing, start the private
#           server if not running (idempotent), wait until it answers PING,
#           print `REDIS_HOST=127.0.0.1:PORT` on stdout.
#   stop    shut it down (no save); no-op when not running.
#   status  print `running ...` (exit 0) or `stopped ...` (exit 3).
#   env     print KEY=VALUE lines (REDIS_HOST, REDIS_PORT, REDIS_URL,
#           REDIS_CLI, REDIS_BENCHMARK, ...); `env --export` prefixes each
#           with `export ` for eval.
#
# Environment:
#   TODO_REDIS_PORT  TCP port on 127.0.0.1 (default 56379). If the default
#                    port is taken by something else, start picks a free port
#                    and says so; an explicitly set port that is taken is an
#                    error.
#   TODO_REDIS_DIR   base directory (default $REPO/.cache/redis): working
#                    dir, redis.pid, redis.log, port, lock.
#
# The server runs as the calling user, daemonized, bound to 127.0.0.1 only,
# with `save ""` and `appendonly no`: nothing is written to disk, every start
# begins empty.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT_VAR=TODO_REDIS_PORT # for lib.sh's pick_port, current_port, note_running
DEFAULT_PORT=56379
SYSTEM_PORT=6379 # where Debian's packaged service listens

BASE="${TODO_REDIS_DIR:-$CACHE_DIR/redis}"
PIDFILE="$BASE/redis.pid"
LOGFILE="$BASE/redis.log"
PORTFILE="$BASE/port"

REDIS_SERVER=""
REDIS_CLI=""
REDIS_BENCHMARK=""

# --- binaries ---------------------------------------------------------------

find_bin() {
    local name="$1" p
    p="$(command -v "$name" 2>/dev/null || true)"
    [[ -z "$p" && -x "/usr/bin/$name" ]] && p="/usr/bin/$name"
    echo "$p"
}

find_bins() {
    REDIS_SERVER="$(find_bin redis-server)"
    REDIS_CLI="$(find_bin redis-cli)"
    REDIS_BENCHMARK="$(find_bin redis-benchmark)"
}

# A packaged redis-server service listening on 6379 that was not there
# before the install: stop and disable it, we only want the binaries.
stop_packaged_service() {
    log "the redis-server package started a system service on port $SYSTEM_PORT; stopping and disabling it"
    if have systemctl && systemctl is-active --quiet redis-server 2>/dev/null; then
        as_root systemctl stop redis-server >&2 || true
        as_root systemctl disable redis-server >&2 || true
    elif have service; then
        as_root service redis-server stop >&2 || true
        have update-rc.d && { as_root update-rc.d redis-server disable >&2 || true; }
    fi
    local pid
    pid="$(read_line /run/redis/redis-server.pid)"
    if pid_is "$pid" redis-server; then
        as_root kill -TERM "$pid" || true
    fi
    local deadline=$((SECONDS + 15))
    while port_is_open 127.0.0.1 "$SYSTEM_PORT" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if port_is_open 127.0.0.1 "$SYSTEM_PORT"; then
        warn "something still listens on 127.0.0.1:$SYSTEM_PORT after stopping the packaged service"
    fi
}

ensure_bins() {
    local install="${1:-install}"
    find_bins
    [[ -n "$REDIS_SERVER" && -n "$REDIS_CLI" ]] && return 0
    [[ "$install" == install ]] || return 0
    log "redis-server not found; installing Debian's redis-server package"
    local system_port_was_open=0
    port_is_open 127.0.0.1 "$SYSTEM_PORT" && system_port_was_open=1
    need_apt_packages redis-server
    if ((!system_port_was_open)) && port_is_open 127.0.0.1 "$SYSTEM_PORT"; then
        stop_packaged_service
    fi
    find_bins
    [[ -n "$REDIS_SERVER" && -n "$REDIS_CLI" ]] \
        || die "installed redis-server but still cannot find redis-server/redis-cli"
}

# --- server state -----------------------------------------------------------

running_pid() {
    local pid
    pid="$(read_line "$PIDFILE")"
    pid_is "$pid" redis-server || return 1
    # ours: redis chdirs into its `dir`, which is $BASE
    [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(cd "$BASE" && pwd -P)" ]] || return 1
    echo "$pid"
}

is_running() {
    [[ -d "$BASE" ]] && running_pid >/dev/null
}

running_port() {
    read_line "$PORTFILE"
}

ping_ok() {
    [[ "$("$REDIS_CLI" -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
}

wait_ready() {
    wait_until 30 0.1 ping_ok "$1" \
        || die_with_log "$LOGFILE" "redis did not answer PING on 127.0.0.1:$1 within 30s (log: $LOGFILE)"
}

# --- commands ---------------------------------------------------------------

cmd_start() {
    ensure_bins install
    mkdir -p "$BASE"
    take_lock "$BASE/lock" 120 # one start/stop at a time
    local port pid
    if pid="$(running_pid)"; then
        port="$(running_port)"
        note_running "$pid" "$port" "dir $BASE"
    else
        rm -f "$PIDFILE"
        port="$(pick_port)"
        log "starting $("$REDIS_SERVER" --version | grep -oE 'v=[0-9.]+' || echo redis-server) on 127.0.0.1:$port (dir $BASE, no persistence)"
        # 9>&- : don't leak the lock fd into the daemon.
        (cd "$BASE" && "$REDIS_SERVER" \
            --port "$port" \
            --bind 127.0.0.1 \
            --protected-mode yes \
            --daemonize yes \
            --dir "$BASE" \
            --pidfile "$PIDFILE" \
            --logfile "$LOGFILE" \
            --save '' \
            --appendonly no \
            9>&-) >&2 || die_with_log "$LOGFILE" "redis-server failed to start (log: $LOGFILE)"
        echo "$port" >"$PORTFILE"
    fi
    wait_ready "$port"
    echo "REDIS_HOST=127.0.0.1:$port"
}

cmd_stop() {
    if [[ ! -d "$BASE" ]]; then
        log "not running (no $BASE)"
        return 0
    fi
    find_bins
    take_lock "$BASE/lock" 120
    local pid port
    if ! pid="$(running_pid)"; then
        log "not running (dir $BASE)"
        rm -f "$PIDFILE"
        return 0
    fi
    port="$(running_port)"
    log "stopping (pid $pid, port $port)"
    local shutdown=()
    if [[ -n "$REDIS_CLI" && -n "$port" ]]; then
        shutdown=("$REDIS_CLI" -h 127.0.0.1 -p "$port" shutdown nosave)
    fi
    stop_process "$pid" "${shutdown[@]}"
    rm -f "$PIDFILE"
}

cmd_status() {
    server_status dir "$BASE" "$LOGFILE"
}

cmd_env() {
    ensure_bins install
    local port
    port="$(current_port)"
    print_env "${1:-}" \
        "REDIS_HOST=127.0.0.1:$port" \
        "REDIS_PORT=$port" \
        "REDIS_URL=redis://127.0.0.1:$port" \
        "REDIS_SERVER=$REDIS_SERVER" \
        "REDIS_CLI=$REDIS_CLI" \
        "REDIS_BENCHMARK=$REDIS_BENCHMARK" \
        "TODO_REDIS_DIR=$BASE" \
        "TODO_REDIS_LOG=$LOGFILE"
}

dispatch "start stop status env" "$@"
