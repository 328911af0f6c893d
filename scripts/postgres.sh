#!/usr/bin/env bash
# A private PostgreSQL cluster for this checkout's tests. Never touches a
# system cluster (own data dir, own socket dir, own port, own pg_ctl).
#
# Usage: scripts/postgres.sh start|stop|status|env [--export]
#
#   start   initdb if needed, start if not running (idempotent), wait until
#           ready, make sure role `todo` (superuser, password `todo`) and
#           database `todo` exist, print `DATABASE_URL=...` on stdout.
#   stop    stop the cluster (fast mode); no-op when not running.
#   status  print `running ...` (exit 0) or `stopped ...` (exit 3).
#   env     print KEY=VALUE lines (DATABASE_URL, TODO_PG_BINDIR, PGBENCH,
#           PSQL, PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE, ...);
#           `env --export` prefixes each with `export ` for eval.
#
# Environment:
#   TODO_PG_PORT  TCP port on 127.0.0.1 (default 54329). If the default port
#                 is taken by something else, start picks a free port and
#                 says so; an explicitly set port that is taken is an error.
#   TODO_PG_FAST  1 = fsync/synchronous_commit/full_page_writes off (faster,
#                 not crash-safe). Default 0: durability as in production.
#                 Applied when the server starts (stop + start to change).
#   TODO_PG_DIR   override the cluster's base directory (see below).
#
# Where the data lives (base dir; inside it: data/, run/ = unix socket dir,
# postgres.log, lock):
#   * not root: $REPO/.cache/postgres, everything owned by the current user.
#   * root: initdb/postgres refuse to run as root, so the cluster runs as the
#     `postgres` OS user (created if missing) via `runuser -u postgres --`.
#     If `postgres` can traverse $REPO/.cache the base dir is
#     $REPO/.cache/postgres (chowned to postgres); otherwise (e.g. the repo is
#     under /root, mode 0700) it is /tmp/todo-pg-$UID-<sha256(repo path)[:12]>.
#     An out-of-repo cluster is tied to this checkout's .cache by a token: if
#     .cache was wiped (fresh clone at the same path), the old cluster is
#     discarded and a new one initialised, as an in-repo one would be.
#   * unix socket paths are limited to ~107 bytes; if run/ would be too long
#     the socket dir is /tmp/todo-pg-sock-$UID-<hash> instead.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_USER_OS=postgres  # OS user the server runs as when we are root
PG_SUPERUSER=postgres # bootstrap superuser created by initdb
PORT_VAR=TODO_PG_PORT # for lib.sh's pick_port, current_port, note_running
DEFAULT_PORT=54329
APP_ROLE=todo
APP_PASSWORD=todo
APP_DB=todo

IS_ROOT=0
[[ "$(id -u)" -eq 0 ]] && IS_ROOT=1

BINDIR=""
BASE=""
DATA=""
SOCKDIR=""
LOGFILE=""
CONF_NAME="todo-test.conf"

repo_hash() {
    printf '%s' "$REPO" | sha256sum | cut -c1-12
}

# --- binaries ---------------------------------------------------------------

valid_bindir() {
    local d="$1"
    [[ -n "$d" && -x "$d/postgres" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/pg_isready" && -x "$d/psql" ]]
}

major_of_bindir() {
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> 15
    "$1/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/'
}

# Print the server bindir, or nothing. Prefers: $TODO_PG_BINDIR, the version
# matching an existing data dir, `pg_config --bindir`, newest
# /usr/lib/postgresql/*/bin.
find_bindir() {
    local want_version="${1:-}" d
    if valid_bindir "${TODO_PG_BINDIR:-}"; then
        echo "$TODO_PG_BINDIR"
        return
    fi
    if [[ -n "$want_version" ]] && valid_bindir "/usr/lib/postgresql/$want_version/bin"; then
        echo "/usr/lib/postgresql/$want_version/bin"
        return
    fi
    if have pg_config; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if valid_bindir "$d"; then
            echo "$d"
            return
        fi
    fi
    while IFS= read -r d; do
        if valid_bindir "$d"; then
            echo "$d"
            return
        fi
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -rV)
}

install_postgres() {
    log "PostgreSQL server binaries not found; installing Debian's postgresql packages"
    # Keep the package from creating (and starting) its own system cluster
    # 'main' on port 5432: we only want the binaries. createcluster.conf
    # includes this directory (postgresql-common >= 2xx, Debian 12 ships 248).
    local dropin=/etc/postgresql-common/createcluster.d/50-todo-no-main-cluster.conf
    if [[ ! -e "$dropin" ]]; then
        as_root mkdir -p "$(dirname "$dropin")"
        printf 'create_main_cluster = false\n' | as_root tee "$dropin" >/dev/null
    fi
    need_apt_packages postgresql postgresql-contrib
}

# Sets BINDIR; installs the server if needed (and allowed).
ensure_bindir() {
    local install="${1:-install}" want=""
    [[ -n "$DATA" && -f "$DATA/PG_VERSION" ]] && want="$(cat "$DATA/PG_VERSION" 2>/dev/null || true)"
    BINDIR="$(find_bindir "$want")"
    if [[ -z "$BINDIR" && "$install" == install ]]; then
        install_postgres
        BINDIR="$(find_bindir "$want")"
        [[ -n "$BINDIR" ]] || die "installed postgresql but still cannot find initdb/pg_ctl/postgres"
    fi
}

# --- OS user and directories -------------------------------------------------

pg_os_user_exists() {
    id -u "$PG_USER_OS" >/dev/null 2>&1
}

ensure_pg_os_user() {
    ((IS_ROOT)) || return 0
    pg_os_user_exists && return 0
    log "creating OS user '$PG_USER_OS' (the server must not run as root)"
    useradd --system --user-group --no-create-home \
        --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER_OS" \
        || die "could not create OS user '$PG_USER_OS'"
}

# Run a server-side command as the cluster owner, from a cwd it can access,
# with a locale that exists (a bogus inherited LC_ALL makes postgres fail).
as_pg() {
    local loc=C
    locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' && loc=C.UTF-8
    # 9>&- : don't leak our flock fd into the postmaster (it would hold the
    # lock for as long as the server runs).
    if ((IS_ROOT)); then
        (cd / && LC_ALL=$loc LANG=$loc runuser -u "$PG_USER_OS" -- "$@" 9>&-)
    else
        (cd / && LC_ALL=$loc LANG=$loc "$@" 9>&-)
    fi
}

pg_can_traverse() {
    pg_os_user_exists || return 1
    (cd / && runuser -u "$PG_USER_OS" -- test -x "$1" -a -r "$1") 2>/dev/null
}

# Sets BASE, DATA, SOCKDIR, LOGFILE (does not create anything except .cache).
choose_dirs() {
    if [[ -n "${TODO_PG_DIR:-}" ]]; then
        BASE="$TODO_PG_DIR"
    elif ((!IS_ROOT)); then
        BASE="$CACHE_DIR/postgres"
    else
        ensure_cache_dir
        if pg_can_traverse "$CACHE_DIR"; then
            BASE="$CACHE_DIR/postgres"
        else
            BASE="/tmp/todo-pg-$(id -u)-$(repo_hash)"
        fi
    fi
    DATA="$BASE/data"
    LOGFILE="$BASE/postgres.log"
    SOCKDIR="$BASE/run"
    # sun_path is 108 bytes incl. NUL; the socket file is ".s.PGSQL.NNNNN".
    if ((${#SOCKDIR} + 16 > 100)); then
        SOCKDIR="/tmp/todo-pg-sock-$(id -u)-$(repo_hash)"
    fi
}

is_in_repo_base() {
    [[ "$BASE" == "$CACHE_DIR/"* ]]
}

mkdir_owned() {
    # mkdir_owned dir mode : create (if needed) and hand to the cluster owner
    local dir="$1" mode="$2"
    if [[ -e "$dir" ]]; then
        [[ -d "$dir" ]] || die "$dir exists and is not a directory"
        # Refuse a pre-existing dir in /tmp we did not make (shared /tmp).
        local owner
        owner="$(stat -c %u "$dir")"
        if [[ "$dir" == /tmp/* && "$owner" != 0 && "$owner" != "$(id -u)" && "$owner" != "$(id -u "$PG_USER_OS" 2>/dev/null || echo x)" ]]; then
            die "$dir exists but belongs to uid $owner; remove it or set TODO_PG_DIR"
        fi
    else
        mkdir -p "$dir"
    fi
    chmod "$mode" "$dir"
    if ((IS_ROOT)); then
        chown "$PG_USER_OS:" "$dir"
    fi
}

# An out-of-repo cluster survives `rm -rf .cache` / a fresh clone at the same
# path; tie it to .cache with a random token so it is discarded then.
check_out_of_repo_token() {
    is_in_repo_base && return 0
    local repo_tok="$CACHE_DIR/postgres.token" base_tok="$BASE/owner.token"
    ensure_cache_dir
    if [[ -e "$DATA" ]]; then
        if [[ ! -f "$repo_tok" || ! -f "$base_tok" ]] || ! cmp -s "$repo_tok" "$base_tok"; then
            warn "$BASE is left over from an earlier checkout at this path; discarding it"
            discard_cluster
        fi
    fi
    if [[ ! -f "$repo_tok" ]]; then
        { date +%s%N; printf '%s\n' "$REPO" "$$" "$RANDOM"; } | sha256sum | cut -c1-32 >"$repo_tok"
    fi
    cp "$repo_tok" "$base_tok"
    printf 'PostgreSQL test cluster of %s (scripts/postgres.sh)\n' "$REPO" >"$BASE/README"
}

# A data dir made by another uid (e.g. user postgres was deleted and
# re-created) would keep the server from starting: hand it over.
fix_data_owner() {
    ((IS_ROOT)) || return 0
    [[ -d "$DATA" ]] || return 0
    if [[ "$(stat -c %u "$DATA")" != "$(id -u "$PG_USER_OS")" ]]; then
        warn "$DATA belongs to uid $(stat -c %u "$DATA"); chowning it to $PG_USER_OS"
        chown -R "$PG_USER_OS:" "$DATA"
    fi
}

prepare_dirs() {
    if ((IS_ROOT)) && [[ "$BASE" != "$CACHE_DIR/"* ]]; then
        log "postgres cannot reach $CACHE_DIR (or TODO_PG_DIR is set); cluster lives in $BASE"
    fi
    mkdir_owned "$BASE" 0755
    mkdir_owned "$SOCKDIR" 0755
}

# --- cluster state ----------------------------------------------------------

pg_ctl() {
    as_pg "$BINDIR/pg_ctl" "$@"
}

is_running() {
    [[ -n "$BINDIR" && -f "$DATA/PG_VERSION" ]] || return 1
    pg_ctl status -D "$DATA" >/dev/null 2>&1
}

running_pid() {
    read_line "$DATA/postmaster.pid" 1
}

running_port() {
    read_line "$DATA/postmaster.pid" 4
}

discard_cluster() {
    if [[ -f "$DATA/postmaster.pid" ]]; then
        local pid
        pid="$(running_pid)"
        if [[ -n "$BINDIR" ]]; then
            pg_ctl stop -D "$DATA" -m immediate -w -t 30 >/dev/null 2>&1 || true
        fi
        if pid_is "$pid" postgres; then
            kill -QUIT "$pid" 2>/dev/null || true
            sleep 2
        fi
    fi
    rm -rf "$DATA"
}

initdb_if_needed() {
    if [[ -f "$DATA/PG_VERSION" ]]; then
        local have want
        have="$(cat "$DATA/PG_VERSION")"
        want="$(major_of_bindir "$BINDIR")"
        if [[ "$have" == "$want" ]]; then
            return 0
        fi
        warn "data dir is PostgreSQL $have but server is $want; re-initialising (test data is disposable)"
        discard_cluster
    elif [[ -e "$DATA" ]]; then
        warn "$DATA exists but is not an initialised cluster (interrupted initdb?); re-initialising"
        rm -rf "$DATA"
    fi
    local locale=C
    locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' && locale=C.UTF-8
    log "initdb $DATA (PostgreSQL $(major_of_bindir "$BINDIR"), locale $locale)"
    local out
    if ! out="$(as_pg "$BINDIR/initdb" -D "$DATA" --username="$PG_SUPERUSER" \
        --auth=trust --encoding=UTF8 --locale="$locale" --no-sync --no-instructions 2>&1)"; then
        printf '%s\n' "$out" >&2
        rm -rf "$DATA"
        die "initdb failed"
    fi
    printf "\n# Test settings (port, socket dir, fsync, ...) written by scripts/postgres.sh:\ninclude_if_exists = '%s'\n" \
        "$CONF_NAME" >>"$DATA/postgresql.conf"
}

write_conf() {
    local port="$1" durable=on
    [[ "${TODO_PG_FAST:-0}" == 1 ]] && durable=off
    local f="$DATA/$CONF_NAME"
    cat >"$f" <<EOF
# Written by scripts/postgres.sh before each start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$SOCKDIR'
max_connections = 300
# Durability: on by default (realistic); TODO_PG_FAST=1 turns it off.
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    if ((IS_ROOT)); then
        chown "$PG_USER_OS:" "$f"
    fi
    chmod 0644 "$f"
}

wait_ready() {
    wait_until 60 0.2 "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$1" -t 2 \
        || die_with_log "$LOGFILE" "server did not become ready on 127.0.0.1:$1 within 60s (log: $LOGFILE)"
}

psql_admin() {
    local port="$1"
    shift
    PGPASSWORD='' "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" \
        -U "$PG_SUPERUSER" -d postgres "$@"
}

ensure_role_and_db() {
    local port="$1"
    psql_admin "$port" -c "DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_ROLE') THEN
        CREATE ROLE $APP_ROLE LOGIN SUPERUSER PASSWORD '$APP_PASSWORD';
    ELSE
        ALTER ROLE $APP_ROLE LOGIN SUPERUSER PASSWORD '$APP_PASSWORD';
    END IF;
END
\$\$;" >/dev/null
    if [[ "$(psql_admin "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = '$APP_DB'")" != 1 ]]; then
        log "creating database $APP_DB"
        psql_admin "$port" -c "CREATE DATABASE $APP_DB OWNER $APP_ROLE" >/dev/null
    fi
}

database_url() {
    echo "postgres://$APP_ROLE:$APP_PASSWORD@127.0.0.1:$1/$APP_DB"
}

# --- commands ---------------------------------------------------------------

cmd_start() {
    ensure_bindir install # installs the server if missing (creates user postgres)
    ensure_pg_os_user     # e.g. binaries present but user removed / minimal install
    choose_dirs
    prepare_dirs
    take_lock "$BASE/lock" 300 # one start/stop at a time
    check_out_of_repo_token
    fix_data_owner
    ensure_bindir install # re-pick the bindir now that PG_VERSION may be gone

    local port
    if is_running; then
        port="$(running_port)"
        note_running "$(running_pid)" "$port" "data $DATA"
    else
        initdb_if_needed
        port="$(pick_port)"
        write_conf "$port"
        log "starting PostgreSQL $(major_of_bindir "$BINDIR") on 127.0.0.1:$port (data $DATA, fsync $([[ "${TODO_PG_FAST:-0}" == 1 ]] && echo off || echo on))"
        pg_ctl start -D "$DATA" -l "$LOGFILE" -w -t 90 -s >&2 \
            || die_with_log "$LOGFILE" "pg_ctl start failed (log: $LOGFILE)"
    fi
    wait_ready "$port"
    ensure_role_and_db "$port"
    echo "DATABASE_URL=$(database_url "$port")"
}

cmd_stop() {
    choose_dirs
    ensure_bindir no-install
    if [[ -z "$BINDIR" || ! -d "$BASE" ]]; then
        log "not running (no cluster at $BASE)"
        return 0
    fi
    take_lock "$BASE/lock" 300
    if is_running; then
        log "stopping (pid $(running_pid), data $DATA)"
        pg_ctl stop -D "$DATA" -m fast -w -t 120 -s >&2 || die "pg_ctl stop failed (log: $LOGFILE)"
    else
        log "not running (data $DATA)"
    fi
}

cmd_status() {
    choose_dirs
    ensure_bindir no-install
    server_status data "$DATA" "$LOGFILE"
}

cmd_env() {
    choose_dirs
    ensure_bindir install
    local port
    port="$(current_port)"
    print_env "${1:-}" \
        "DATABASE_URL=$(database_url "$port")" \
        "TODO_PG_BINDIR=$BINDIR" \
        "PGBENCH=$BINDIR/pgbench" \
        "PSQL=$BINDIR/psql" \
        "TODO_PG_DATA=$DATA" \
        "TODO_PG_LOG=$LOGFILE" \
        "PGHOST=127.0.0.1" \
        "PGPORT=$port" \
        "PGUSER=$APP_ROLE" \
        "PGPASSWORD=$APP_PASSWORD" \
        "PGDATABASE=$APP_DB"
}

dispatch "start stop status env" "$@"
