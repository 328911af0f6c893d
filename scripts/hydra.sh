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

# For lib.sh's go tools: cache dirs todo-hydra/<version> and .cache/hydra,
# the stamp's hydra_version.
SRC="$REPO/tools/hydra"
TOOL=hydra
TOOL_CACHE_VAR=TODO_HYDRA_CACHE
TOOL_BINS=(hydra)
PKG=github.com/ory/hydra/v2
# Bump when build_bins below or lib.sh's go_build changes (forces a rebuild).
RECIPE="1 CGO_ENABLED=0 -trimpath -buildvcs=false -ldflags=-s,-w,config.Version,config.Commit,config.Date"

# v2.3.0 from the `require` of github.com/ory/hydra/v2 in tools/hydra/go.mod.
tool_version() {
    go_mod_version "$PKG"
}

build_bins() {
    local go="$1" version="$2" dir="$3"
    local cfg="$PKG/driver/config"
    log "go build hydra ($PKG)"
    go_build "$go" "$dir/hydra" "$PKG" \
        "-s -w -X $cfg.Version=$version -X $cfg.Commit=$version -X $cfg.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        || die "building hydra failed"
    "$dir/hydra" version >/dev/null || die "the freshly built hydra does not run"
}

print_paths() {
    local dir="$1" version="$2"
    echo "HYDRA=$dir/bin/hydra"
    echo "HYDRA_VERSION=$version"
}

cmd_build() { go_tool_build; }
cmd_path() { go_tool_path; }
cmd_clean() { go_tool_clean; }

dispatch "build path clean" "$@"
