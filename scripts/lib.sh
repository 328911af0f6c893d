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
#   go tools  find_go, go_mod_version, go_build, source_hash, candidate_dirs,
#             expected_stamp, is_valid_build, find_valid_build,
#             choose_build_dir, do_build, go_tool_build, go_tool_path,
#             go_tool_clean (the skeleton of daprd.sh and hydra.sh, below)
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

# --- go tools ---------------------------------------------------------------
# The skeleton of a program built from Go modules and cached (daprd.sh,
# hydra.sh): its build/path/clean commands. The script sets
#   SRC             the Go module to build in (tools/<name>)
#   RECIPE          its build recipe as text, hashed with the sources: bump it
#                   when the build changes (forces a rebuild)
#   TOOL            the name of the cache dirs and of the stamp's version key:
#                   ${XDG_CACHE_HOME:-$HOME/.cache}/todo-$TOOL/<version>,
#                   $CACHE_DIR/$TOOL, ${TOOL}_version=<version>
#   TOOL_CACHE_VAR  the name of the variable that, when set, is the only
#                   cache dir (e.g. TODO_DAPR_CACHE)
#   TOOL_BINS       (array) the binaries a build makes, in <dir>/bin/
# and defines tool_version (print the version to build), build_bins go
# version dir (build TOOL_BINS into dir and check they run) and print_paths
# dir version (the stdout of build and path). Its cmd_build, cmd_path and
# cmd_clean are go_tool_build, go_tool_path and go_tool_clean. A build is
# valid when all of TOOL_BINS exist and <dir>/stamp records the version and
# the source_hash.

# The go binary: $TODO_GO, else go on PATH, else /usr/local/go/bin/go.
find_go() {
    if [[ -n "${TODO_GO:-}" ]]; then
        [[ -x "$TODO_GO" ]] || die "TODO_GO=$TODO_GO is not executable"
        echo "$TODO_GO"
    elif have go; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    else
        die "Go is not installed (need the version in $SRC/go.mod or newer; set TODO_GO)"
    fi
}

# go_mod_version module : the version of module in the `require` of
# $SRC/go.mod (e.g. v1.18.2).
go_mod_version() {
    local v
    v="$(awk -v mod="$1" '$1 == mod && $2 ~ /^v[0-9]/ { print $2; exit }' "$SRC/go.mod")"
    [[ -n "$v" ]] || die "cannot find the $1 requirement in $SRC/go.mod"
    echo "$v"
}

# go_build go out pkg ldflags : build pkg (as named in $SRC) into out, without
# cgo, reproducibly and niced; go's output on stderr. A change to these flags
# changes every build: bump the RECIPE of the scripts.
go_build() {
    local go="$1" out="$2" pkg="$3" ldflags="$4"
    (cd "$SRC" && CGO_ENABLED=0 nice -n 10 "$go" build \
        -trimpath -buildvcs=false \
        -ldflags "$ldflags" \
        -o "$out" "$pkg") >&2
}

# A hash of $RECIPE and $SRC/{go.mod,go.sum,*.go}.
source_hash() {
    local files=("$SRC/go.mod" "$SRC/go.sum")
    local f
    while IFS= read -r f; do
        files+=("$f")
    done < <(find "$SRC" -maxdepth 1 -name '*.go' -type f | LC_ALL=C sort)
    {
        printf '%s\n' "$RECIPE"
        for f in "${files[@]}"; do
            printf '== %s\n' "${f#"$SRC/"}"
            cat "$f"
        done
    } | sha256sum | cut -d' ' -f1
}

machine_cache_dir() {
    local base="${XDG_CACHE_HOME:-}"
    if [[ -z "$base" ]]; then
        [[ -n "${HOME:-}" ]] || return 1
        base="$HOME/.cache"
    fi
    echo "$base/todo-$TOOL/$1"
}

# candidate_dirs version : the cache dirs, most preferred first.
candidate_dirs() {
    local version="$1" d
    if [[ -n "${!TOOL_CACHE_VAR:-}" ]]; then
        echo "${!TOOL_CACHE_VAR}"
        return
    fi
    if d="$(machine_cache_dir "$version")"; then
        echo "$d"
    fi
    echo "$CACHE_DIR/$TOOL"
}

# expected_stamp version hash : the lines of a valid build's stamp (it has
# more, for people: recipe, go, built_at, source).
expected_stamp() {
    printf '%s_version=%s\nsource_hash=%s\n' "$TOOL" "$1" "$2"
}

# is_valid_build dir version hash
is_valid_build() {
    local dir="$1" version="$2" hash="$3" bin
    for bin in "${TOOL_BINS[@]}"; do
        [[ -x "$dir/bin/$bin" ]] || return 1
    done
    [[ -f "$dir/stamp" ]] || return 1
    [[ "$(grep -E "^(${TOOL}_version|source_hash)=" "$dir/stamp")" == "$(expected_stamp "$version" "$hash")" ]]
}

# find_valid_build version hash : print the first dir holding a valid build,
# or nothing (and fail).
find_valid_build() {
    local version="$1" hash="$2" d
    while IFS= read -r d; do
        if is_valid_build "$d" "$version" "$hash"; then
            echo "$d"
            return 0
        fi
    done < <(candidate_dirs "$version")
    return 1
}

# choose_build_dir version : where a new build goes: the first candidate dir
# we can create and write.
choose_build_dir() {
    local version="$1" d
    while IFS= read -r d; do
        if mkdir -p "$d" 2>/dev/null && [[ -w "$d" ]]; then
            echo "$d"
            return 0
        fi
    done < <(candidate_dirs "$version")
    die "no writable cache dir among: $(candidate_dirs "$version" | tr '\n' ' ')"
}

# do_build dir version hash : build (build_bins) into dir/bin.tmp.<pid>, then
# replace dir/bin with it and write dir/stamp.
do_build() {
    local dir="$1" version="$2" hash="$3" go tmp bin sizes="" start=$SECONDS
    local names="${TOOL_BINS[*]}"
    go="$(find_go)"
    log "building ${names// / and } $version with $("$go" version | cut -d' ' -f3) into $dir (takes a few minutes the first time)"
    tmp="$dir/bin.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # The build's compiled packages go to a cache of its own, deleted afterwards (unless GOCACHE
    # is set): the binaries are what is kept, and a clean machine (CI) has no disk to spare.
    local gocache="${GOCACHE:-$dir/go-build.tmp.$$}"
    # Clean up a half-done build if interrupted.
    trap 'rm -rf "$tmp"; [[ -n "${GOCACHE:-}" ]] || rm -rf "$gocache"' EXIT
    log "go mod download"
    (cd "$SRC" && nice -n 10 "$go" mod download) >&2 || die "go mod download failed (is the Go module proxy reachable?)"
    GOCACHE="$gocache" build_bins "$go" "$version" "$tmp"
    [[ -n "${GOCACHE:-}" ]] || rm -rf "$gocache"
    rm -f "$dir/stamp"
    rm -rf "${dir:?}/bin"
    mv "$tmp" "$dir/bin"
    trap - EXIT
    {
        expected_stamp "$version" "$hash"
        printf 'recipe=%s\ngo=%s\nbuilt_at=%s\nsource=%s\n' \
            "$RECIPE" "$("$go" version)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SRC"
    } >"$dir/stamp"
    for bin in "${TOOL_BINS[@]}"; do
        sizes+="${sizes:+, }$bin $(du -h "$dir/bin/$bin" | cut -f1)"
    done
    log "built in $((SECONDS - start))s: $sizes"
}

# The build command: a no-op when a valid build is cached.
go_tool_build() {
    local version hash dir
    version="$(tool_version)"
    hash="$(source_hash)"
    if dir="$(find_valid_build "$version" "$hash")"; then
        log "up to date: $dir ($TOOL $version)"
        print_paths "$dir" "$version"
        return 0
    fi
    dir="$(choose_build_dir "$version")"
    # One build at a time per cache dir; re-check after waiting for the lock
    # (another process may just have built it).
    exec 9>>"$dir/lock"
    if ! flock -n 9; then
        log "another build into $dir is running; waiting for it"
        flock -w 3600 9 || die "timed out waiting for $dir/lock"
    fi
    if ! is_valid_build "$dir" "$version" "$hash"; then
        do_build "$dir" "$version" "$hash"
    fi
    exec 9>&-
    print_paths "$dir" "$version"
}

# The path command: exit 1 when no valid build is cached.
go_tool_path() {
    local version hash dir name
    version="$(tool_version)"
    hash="$(source_hash)"
    if ! dir="$(find_valid_build "$version" "$hash")"; then
        name="$(_log_tag)"
        log "$name $version is not built (or ${SRC#"$REPO/"} changed); run: scripts/$name.sh build"
        exit 1
    fi
    print_paths "$dir" "$version"
}

# The clean command: delete all candidate cache dirs.
go_tool_clean() {
    local version d
    version="$(tool_version)"
    while IFS= read -r d; do
        if [[ -e "$d" ]]; then
            log "removing $d"
            rm -rf "$d"
        fi
    done < <(candidate_dirs "$version")
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
