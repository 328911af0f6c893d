#!/usr/bin/env bash
# Dapr's sidecar (daprd) and scheduler, built from Go modules: no prebuilt
# Dapr binary can be downloaded here, but the Go module proxy works.
#
# Usage: scripts/daprd.sh build|path|clean
#
#   build   build tools/daprd (daprd with only our components) and
#           github.com/dapr/dapr/cmd/scheduler unless a matching build is
#           cached (then a no-op), and print on stdout:
#             DAPRD=/path/daprd
#             DAPR_SCHEDULER=/path/dapr-scheduler
#             DAPR_VERSION=1.x.y
#   path    print the same lines without building; exit 1 if not built.
#   clean   delete the cached builds (all candidate cache dirs).
#
# Cache: a build is valid when its stamp records the dapr version pinned in
# tools/daprd/go.mod, a hash of tools/daprd/{go.mod,go.sum,*.go} and this
# script's build recipe, and both binaries exist. Candidate dirs, the first
# valid one wins:
#   1. $TODO_DAPR_CACHE if set (then it is the only one)
#   2. ${XDG_CACHE_HOME:-$HOME/.cache}/todo-dapr/<version>  (machine-wide:
#      survives a fresh clone, e.g. in CI)
#   3. $REPO/.cache/dapr
# A new build goes to the machine-wide dir when it is writable, else to the
# repo's .cache. Binaries live in <dir>/bin/, the stamp in <dir>/stamp.
#
# Environment: TODO_DAPR_CACHE (see above), TODO_GO (go binary; default: go
# on PATH, else /usr/local/go/bin/go). GOPROXY/GOMODCACHE/GOCACHE as usual.
# The build takes a few minutes on 2 cores (nice -n 10), ~1 GB of module
# cache and ~140 MB of binaries.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# For lib.sh's go tools: cache dirs todo-dapr/<version> and .cache/dapr, the
# stamp's dapr_version.
SRC="$REPO/tools/daprd"
TOOL=dapr
TOOL_CACHE_VAR=TODO_DAPR_CACHE
TOOL_BINS=(daprd dapr-scheduler)
# Bump when build_bins below or lib.sh's go_build changes (forces a rebuild).
RECIPE="2 CGO_ENABLED=0 -trimpath -buildvcs=false -ldflags=-s,-w,buildinfo.version,logger.DaprVersion"

# v1.18.2 from the `require` of github.com/dapr/dapr in tools/daprd/go.mod.
tool_version() {
    go_mod_version github.com/dapr/dapr
}

build_bins() {
    local go="$1" version="$2" dir="$3"
    local ldflags="-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=${version#v} -X github.com/dapr/kit/logger.DaprVersion=${version#v}"
    log "go build daprd (tools/daprd)"
    go_build "$go" "$dir/daprd" . "$ldflags" || die "building daprd failed"
    log "go build dapr-scheduler (github.com/dapr/dapr/cmd/scheduler)"
    go_build "$go" "$dir/dapr-scheduler" github.com/dapr/dapr/cmd/scheduler "$ldflags" \
        || die "building dapr-scheduler failed"
    "$dir/daprd" --version >/dev/null || die "the freshly built daprd does not run"
}

print_paths() {
    local dir="$1" version="$2"
    echo "DAPRD=$dir/bin/daprd"
    echo "DAPR_SCHEDULER=$dir/bin/dapr-scheduler"
    echo "DAPR_VERSION=${version#v}"
}

cmd_build() { go_tool_build; }
cmd_path() { go_tool_path; }
cmd_clean() { go_tool_clean; }

dispatch "build path clean" "$@"
