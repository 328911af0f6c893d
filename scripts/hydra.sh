#!/usr/bin/env bash
# Ory Hydra (OAuth 2.1 / OpenID Connect server), built from Go modules: no
# prebuilt Hydra binary can be downloaded here, but the Go module proxy works.
#
# Usage: scripts/hydra.sh build|path|clean
#
#   build   build github.com/ory/hydra/v2 (a `tool` of tools/hydra/go.mod)
#           unless a matching build is cached (then a no-op), and print on
#           stdout:
#             HYDRA=/path/hydra
#             HYDRA_VERSION=v2.x.y
#   path    print the same lines without building; exit 1 if not built.
#   clean   delete the cached builds (all candidate cache dirs).
#
# Cache: a build is valid when its stamp records the hydra version pinned in
# tools/hydra/go.mod, a hash of tools/hydra/{go.mod,go.sum,*.go} and this
# script's build recipe, and the binary exists. Candidate dirs, the first
# valid one wins:
#   1. $TODO_HYDRA_CACHE if set (then it is the only one)
#   2. ${XDG_CACHE_HOME:-$HOME/.cache}/todo-hydra/<version>  (machine-wide:
#      survives a fresh clone, e.g. in CI)
#   3. $REPO/.cache/hydra
# A new build goes to the machine-wide dir when it is writable, else to the
# repo's .cache. The binary lives in <dir>/bin/hydra, the stamp in <dir>/stamp.
#
# CGO_ENABLED=0: no SQLite (it needs cgo); use PostgreSQL as Hydra's database
# (DSN=postgres://...), or DSN=memory.
#
# Environment: TODO_HYDRA_CACHE (see above), TODO_GO (go binary; default: go
# on PATH, else /usr/local/go/bin/go). GOPROXY/GOMODCACHE/GOCACHE as usual.
# The build takes 1-5 minutes on 2 cores (nice -n 10; ~1 min with a warm
# GOCACHE), ~450 MB of module cache and a ~40 MB binary.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC="$REPO/tools/hydra"
PKG=github.com/ory/hydra/v2
# Bump when the build command below changes (forces a rebuild).
RECIPE="1 CGO_ENABLED=0 -trimpath -buildvcs=false -ldflags=-s,-w,config.Version,config.Commit,config.Date"

# v2.3.0 from the `require` of github.com/ory/hydra/v2 in tools/hydra/go.mod.
hydra_version() {
    local v
    v="$(awk -v pkg="$PKG" '$1 == pkg && $2 ~ /^v[0-9]/ { print $2; exit }' "$SRC/go.mod")"
    [[ -n "$v" ]] || die "cannot find the $PKG requirement in $SRC/go.mod"
    echo "$v"
}

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
    echo "$base/todo-hydra/$1"
}

# Candidate cache dirs, most preferred first.
candidate_dirs() {
    local version="$1" d
    if [[ -n "${TODO_HYDRA_CACHE:-}" ]]; then
        echo "$TODO_HYDRA_CACHE"
        return
    fi
    if d="$(machine_cache_dir "$version")"; then
        echo "$d"
    fi
    echo "$CACHE_DIR/hydra"
}

expected_stamp() {
    printf 'hydra_version=%s\nsource_hash=%s\n' "$1" "$2"
}

is_valid_build() {
    local dir="$1" version="$2" hash="$3"
    [[ -x "$dir/bin/hydra" && -f "$dir/stamp" ]] || return 1
    [[ "$(grep -E '^(hydra_version|source_hash)=' "$dir/stamp")" == "$(expected_stamp "$version" "$hash")" ]]
}

# Print the first dir holding a valid build, or nothing.
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

# Where a new build goes: the first candidate dir we can create and write.
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

print_paths() {
    local dir="$1" version="$2"
    echo "HYDRA=$dir/bin/hydra"
    echo "HYDRA_VERSION=$version"
}

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

go_build() {
    local go="$1" version="$2" out="$3"
    local cfg="$PKG/driver/config"
    (cd "$SRC" && CGO_ENABLED=0 nice -n 10 "$go" build \
        -trimpath -buildvcs=false \
        -ldflags "-s -w -X $cfg.Version=$version -X $cfg.Commit=$version -X $cfg.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        -o "$out" "$PKG") >&2
}

do_build() {
    local dir="$1" version="$2" hash="$3" go tmp start=$SECONDS
    go="$(find_go)"
    log "building hydra $version with $("$go" version | cut -d' ' -f3) into $dir (takes a few minutes the first time)"
    tmp="$dir/bin.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # Clean up a half-done build if interrupted.
    trap 'rm -rf "$tmp"' EXIT
    log "go mod download"
    (cd "$SRC" && nice -n 10 "$go" mod download) >&2 || die "go mod download failed (is the Go module proxy reachable?)"
    log "go build hydra ($PKG)"
    go_build "$go" "$version" "$tmp/hydra" || die "building hydra failed"
    "$tmp/hydra" version >/dev/null || die "the freshly built hydra does not run"
    rm -f "$dir/stamp"
    rm -rf "${dir:?}/bin"
    mv "$tmp" "$dir/bin"
    trap - EXIT
    {
        expected_stamp "$version" "$hash"
        printf 'recipe=%s\ngo=%s\nbuilt_at=%s\nsource=%s\n' \
            "$RECIPE" "$("$go" version)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SRC"
    } >"$dir/stamp"
    log "built in $((SECONDS - start))s: hydra $(du -h "$dir/bin/hydra" | cut -f1)"
}

cmd_build() {
    local version hash dir
    version="$(hydra_version)"
    hash="$(source_hash)"
    if dir="$(find_valid_build "$version" "$hash")"; then
        log "up to date: $dir (hydra $version)"
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

cmd_path() {
    local version hash dir
    version="$(hydra_version)"
    hash="$(source_hash)"
    if ! dir="$(find_valid_build "$version" "$hash")"; then
        log "hydra $version is not built (or tools/hydra changed); run: scripts/hydra.sh build"
        exit 1
    fi
    print_paths "$dir" "$version"
}

cmd_clean() {
    local version d
    version="$(hydra_version)"
    while IFS= read -r d; do
        if [[ -e "$d" ]]; then
            log "removing $d"
            rm -rf "$d"
        fi
    done < <(candidate_dirs "$version")
}

dispatch "build path clean" "$@"
