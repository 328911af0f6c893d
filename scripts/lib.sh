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
# Functions: repo_root, log, warn, die, have, as_root, need_apt_packages,
# free_port, wait_for_port, sha256_of.
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

_log_tag() {
    local script="${BASH_SOURCE[${#BASH_SOURCE[@]}-1]:-$0}"
    basename "$script" .sh
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
    local deadline=$((SECONDS + timeout_s))
    while ! port_is_open "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout_s}s waiting for $host:$port"
            return 1
        fi
        sleep 0.2
    done
}

# sha256_of file... : one hex digest over the given files' contents.
sha256_of() {
    cat "$@" | sha256sum | cut -d' ' -f1
}

# Prints KEY=VALUE lines, each prefixed with $1 (e.g. "export "). Values are plain (no quoting)
# unless they need it, so both `eval "$(... env)"` and `grep ^KEY= | cut -d= -f2-` work.
print_env() {
    local prefix="$1" kv key val
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
