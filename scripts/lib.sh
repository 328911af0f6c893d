# shellcheck shell=bash
# Shared helpers for the repo's shell scripts. Source it, don't run it:
#
#   # shellcheck source=scripts/lib.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# After sourcing, these are set and exported:
#   REPO       absolute path of the repository root
#   CACHE_DIR  $REPO/.cache (gitignored), created on demand
#
# Functions:
#   basics    repo_root, log, warn, die, have, ensure_cache_dir, as_root,
#             apt_package_installed, need_apt_packages, sha256_of, read_line,
#             take_lock, wait_until
#   commands  main_script, usage, dispatch, print_env
#   network   free_port, port_is_open, wait_for_port
#   processes pid_alive, pid_is, stop_process
#   servers   pick_port, current_port, note_running, server_status,
#             die_with_log (the skeleton of postgres.sh and redis.sh, below)
#   benches   cpu_ticks, wait_for_idle, json_num
#   tests     prepare_test_deps, pytest_in
#
# Everything diagnostic goes to stderr so scripts can keep stdout for
# machine-readable output (e.g. DATABASE_URL=...).

if [[ -n "${_TODO_LIB_SH_LOADED:-}" ]]; then
    return 0
fi
_TODO_LIB_SH_LOADED=1

# Absolute, symlink-resolved path of the repository root (the parent of the
# directory holding this file). Does not depend on git or on the caller's cwd.
repo_root() {
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
}

REPO="$(repo_root)"
CACHE_DIR="$REPO/.cache"
export REPO CACHE_DIR

# Path of the script being run (not of this file), as it was invoked.
main_script() {
    echo "${BASH_SOURCE[${#BASH_SOURCE[@]}-1]:-$0}"
}

_log_tag() {
    basename "$(main_script)" .sh
}

log() {
    printf '[%s %s] %s\n' "$(_log_tag)" "$(date +%H:%M:%S)" "$*" >&2
}

warn() {
    log "WARNING: $*"
}

die() {
    log "ERROR: $*"
    exit 1
}

have() {
    command -v "$1" >/dev/null 2>&1
}

ensure_cache_dir() {
    mkdir -p "$CACHE_DIR"
}

# Run a command as root: directly when already root, else through sudo
# (sudo -n without a terminal, e.g. in CI, so it fails instead of hanging).
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif have sudo; then
        if [[ -t 0 ]]; then
            sudo -- "$@"
        else
            sudo -n -- "$@" # no terminal (CI): fail instead of waiting for a password
        fi
    else
        die "need root to run '$*' (not root and sudo is not installed)"
    fi
}

# True when a Debian package is installed (not just known / config-files).
apt_package_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]]
}

# `apt-get update` at most once per run. "Run" = this process tree (exported
# marker) or anything else in this checkout within the last hour (stamp file
# in the cache), so test.sh -> postgres.sh -> ... don't update repeatedly.
_apt_update_once() {
    local stamp="$CACHE_DIR/apt-update.stamp"
    if [[ "${TODO_APT_UPDATED:-}" == 1 ]]; then
        return 0
    fi
    if [[ -n "$(find "$stamp" -mmin -60 2>/dev/null || true)" ]]; then
        export TODO_APT_UPDATED=1
        return 0
    fi
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -q -o DPkg::Lock::Timeout=300 update >&2 \
        || die "apt-get update failed"
    export TODO_APT_UPDATED=1
    ensure_cache_dir
    touch "$stamp"
}

_apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -q -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install "$@" >&2
}

# need_apt_packages pkg... : install the Debian packages that are missing.
# No-op (and no apt-get update) when all are installed already.
need_apt_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        apt_package_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    have apt-get || die "missing packages (${missing[*]}) and apt-get is not available"
    _apt_update_once
    log "apt-get install ${missing[*]}"
    if ! _apt_install "${missing[@]}"; then
        # The lists may be stale if the update was skipped thanks to the stamp.
        warn "apt-get install failed; refreshing package lists and retrying"
        rm -f "$CACHE_DIR/apt-update.stamp"
        unset TODO_APT_UPDATED
        _apt_update_once
        _apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
}

# Print a TCP port on 127.0.0.1 that is free right now (the kernel picks it).
free_port() {
    have python3 || die "free_port needs python3"
    python3 - <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# True if something accepts TCP connections on host:port right now.
port_is_open() {
    local host="$1" port="$2"
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

# wait_for_port host port [timeout_seconds=30]: wait until host:port accepts
# TCP connections. Returns 1 (and logs) on timeout.
wait_for_port() {
    local host="$1" port="$2" timeout_s="${3:-30}"
    wait_until "$timeout_s" 0.2 port_is_open "$host" "$port" && return 0
    log "timed out after ${timeout_s}s waiting for $host:$port"
    return 1
}

# sha256_of file... : one hex digest over the given files' contents.
sha256_of() {
    cat "$@" | sha256sum | cut -d' ' -f1
}

# read_line file [n=1] : line n of a pid/port file; nothing (and success)
# when the file is missing.
read_line() {
    sed -n "${2:-1}p" "$1" 2>/dev/null || true
}

# take_lock file seconds : take an flock on file through fd 9, held until
# `exec 9>&-` or exit (e.g. one start/stop at a time). Dies on timeout.
take_lock() {
    exec 9>>"$1"
    flock -w "$2" 9 || die "timed out waiting for $1"
}

# wait_until seconds interval cmd... : run cmd every interval seconds until
# it succeeds; returns 1 once seconds have passed.
wait_until() {
    local deadline=$((SECONDS + $1)) interval="$2"
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep "$interval"
    done
}

# print_env option KEY=VALUE... : the output of an `env [--export]` command,
# option being that command's first argument (maybe empty): `--export`
# prefixes each line with `export `. Values are plain (no quoting) unless they
# need it, so both `eval "$(... env)"` and `grep ^KEY= | cut -d= -f2-` work.
print_env() {
    local prefix="" kv key val
    [[ "${1:-}" == --export ]] && prefix="export "
    shift
    for kv in "$@"; do
        key="${kv%%=*}" val="${kv#*=}"
        if [[ "$val" =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then
            printf '%s%s=%s\n' "$prefix" "$key" "$val"
        else
            printf '%s%s=%q\n' "$prefix" "$key" "$val"
        fi
    done
}

# --- commands ---------------------------------------------------------------

# usage [status=2] : print lines 2-14 of the script's header comment (what it
# does, its usage and commands) on stderr and exit.
usage() {
    sed -n '2,14p' "$(main_script)" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# dispatch "cmd..." arg... : a script's main: run cmd_<first arg> with the
# other args if it is one of the commands; usage otherwise.
dispatch() {
    (($# >= 2)) || usage
    local commands="$1" cmd="$2" c
    shift 2
    for c in $commands; do
        if [[ "$cmd" == "$c" ]]; then
            "cmd_$c" "$@"
            return
        fi
    done
    case "$cmd" in
        -h | --help | help) usage 0 ;;
    esac
    log "unknown command: $cmd"
    usage
}

# --- processes --------------------------------------------------------------

# True while pid exists and is not a zombie (a daemon's exit status is reaped
# by init, which may take a moment).
pid_alive() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != Z ]]
}

# pid_is pid name : pid is alive and runs a program called name (/proc
# comm): a stale pid file may name a pid reused by something else.
pid_is() {
    pid_alive "$1" && [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2"* ]]
}

# stop_process pid [cmd...] : run cmd, the program's own graceful stop
# (output and failure ignored); SIGTERM pid if it still lives after 5 s,
# SIGKILL after 20 s.
stop_process() {
    local pid="$1"
    shift
    if (($#)); then
        "$@" >/dev/null 2>&1 || true
    fi
    local start=$SECONDS termed=0
    while pid_alive "$pid"; do
        if ((SECONDS - start >= 20)); then
            warn "pid $pid still alive after 20s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        if ((SECONDS - start >= 5 && !termed)); then
            kill -TERM "$pid" 2>/dev/null || true
            termed=1
        fi
        sleep 0.2
    done
}

# --- servers ----------------------------------------------------------------
# The skeleton of a private test server on 127.0.0.1 (postgres.sh, redis.sh).
# The script sets PORT_VAR (the name of its port variable, e.g. TODO_PG_PORT)
# and DEFAULT_PORT, and defines is_running, running_pid and running_port.

# The port for `start`: $PORT_VAR, else DEFAULT_PORT. If the default is taken
# by something else, a free port (and a warning); a set port that is taken is
# an error: the caller asked for that one.
pick_port() {
    local want="${!PORT_VAR:-}"
    local port="${want:-$DEFAULT_PORT}"
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "bad $PORT_VAR: $port"
    fi
    if port_is_open 127.0.0.1 "$port"; then
        if [[ -n "$want" ]]; then
            die "$PORT_VAR=$port is already in use on 127.0.0.1 by another program"
        fi
        local alt
        alt="$(free_port)"
        warn "port $port is in use by another program; using free port $alt (set $PORT_VAR to choose)"
        port="$alt"
    fi
    echo "$port"
}

# The running server's port, else the one `start` will try first.
current_port() {
    local p="" want="${!PORT_VAR:-}"
    if is_running; then
        p="$(running_port)"
    fi
    echo "${p:-${want:-$DEFAULT_PORT}}"
}

# note_running pid port where : `start` found the server up already; warn if
# $PORT_VAR asks for another port (it takes a restart).
note_running() {
    local pid="$1" port="$2" where="$3" want="${!PORT_VAR:-}"
    log "already running (pid $pid, port $port, $where)"
    if [[ -n "$want" && "$want" != "$port" ]]; then
        warn "running on port $port, not $PORT_VAR=$want; run '$0 stop' first to change it"
    fi
}

# server_status key dir logfile : the `status` command: `running pid=...
# port=... key=dir log=logfile` (0) or `stopped key=dir` (3).
server_status() {
    local key="$1" dir="$2" logfile="$3"
    if is_running; then
        echo "running pid=$(running_pid) port=$(running_port) $key=$dir log=$logfile"
        return 0
    fi
    echo "stopped $key=$dir"
    return 3
}

# die_with_log logfile message : die, after the end of the server's log.
die_with_log() {
    tail -n 30 "$1" >&2 2>/dev/null || true
    die "$2"
}

# --- benches ----------------------------------------------------------------

# Busy and total CPU ticks of the machine (all cores) from /proc/stat.
cpu_ticks() {
    awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat
}

# wait_for_idle seconds max_busy_pct : before a measurement, wait up to
# seconds (0 = don't) for the machine to be under max_busy_pct busy over 2 s:
# other work on the shared cores would be measured as ours. Warns and goes on
# after that.
wait_for_idle() {
    local wait_s="$1" max_pct="$2" deadline b1 t1 b2 t2 pct
    ((wait_s > 0)) || return 0
    deadline=$((SECONDS + wait_s))
    while :; do
        read -r b1 t1 < <(cpu_ticks)
        sleep 2
        read -r b2 t2 < <(cpu_ticks)
        pct=$((100 * (b2 - b1) / (t2 - t1 > 0 ? t2 - t1 : 1)))
        ((pct < max_pct)) && return 0
        if ((SECONDS >= deadline)); then
            warn "the machine is ${pct}% busy; measuring anyway"
            return 0
        fi
    done
}

# json_num line key : a top-level number of a one-line JSON object.
json_num() {
    grep -o "\"$2\":[0-9.eE+-]*" <<<"$1" | head -1 | cut -d: -f2
}

# --- tests ------------------------------------------------------------------

# What test.sh and test-deploy.sh both need: the private Redis and daprd
# (cached) running/built, and the project venv. Sets PYTHON.
prepare_test_deps() {
    log "starting Redis and building daprd and Ory Hydra (cached)"
    bash "$REPO/scripts/redis.sh" start >/dev/null
    bash "$REPO/scripts/daprd.sh" build >/dev/null
    bash "$REPO/scripts/hydra.sh" build >/dev/null

    log "preparing the Python environment"
    PYTHON="$(bash "$REPO/scripts/python-env.sh")"
}

# pytest_in dir [pytest args...] : run $PYTHON's pytest on dir. "No tests
# collected" (5) is fine when args select (`scripts/test.sh -k faults`): the
# selection may leave nothing here.
pytest_in() {
    local status=0
    "$PYTHON" -m pytest "$1" -q -p no:cacheprovider "${@:2}" || status=$?
    [[ "$status" == 0 || ("$status" == 5 && $# -gt 1) ]] || return "$status"
}
