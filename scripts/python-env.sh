#!/usr/bin/env bash
# Create or update the Python venv for the end-to-end tests and print the
# path of its python on stdout (logs go to stderr):
#
#   PY="$(scripts/python-env.sh)" && "$PY" -m pytest tests/e2e
#
# venv:          $REPO/.cache/venv
# requirements:  $REPO/tests/e2e/requirements.txt (created with pinned
#                defaults if it does not exist yet)
# Idempotent: pip runs only when the requirements file (or the base
# interpreter) changed since the last successful install (hash stamp in the
# venv). A venv whose base interpreter changed or broke is rebuilt.
#
# Environment: TODO_PYTHON  base interpreter (default: python3 on PATH;
#                           needs Python >= 3.10 for mcp).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$CACHE_DIR/venv"
REQ="$REPO/tests/e2e/requirements.txt"
STAMP="$VENV/.todo-requirements.sha256"

write_default_requirements() {
    [[ -e "$REQ" ]] && return 0
    mkdir -p "$(dirname "$REQ")"
    log "creating $REQ with default pins"
    # noclobber: never overwrite a file someone else created meanwhile.
    (
        set -C
        cat >"$REQ" <<'EOF'
# Python packages for the end-to-end tests (installed by scripts/python-env.sh
# into .cache/venv).
mcp==2.3.0
pytest==9.2.0
pytest-timeout==2.4.0
PyJWT==2.15.1
EOF
    ) 2>/dev/null || true
}

base_python() {
    local py="${TODO_PYTHON:-}"
    if [[ -z "$py" ]]; then
        if have python3; then
            py=python3
        else
            need_apt_packages python3 python3-venv
            py=/usr/bin/python3
        fi
    fi
    have "$py" || die "python interpreter not found: $py"
    "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
        || die "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); need >= 3.10"
    echo "$py"
}

# Identity of an interpreter: version + real path of the base executable.
python_identity() {
    "$1" -c 'import os, sys; print(sys.version.split()[0], os.path.realpath(getattr(sys, "_base_executable", sys.executable)))'
}

create_venv() {
    local py="$1"
    rm -rf "$VENV"
    log "creating venv $VENV ($(python_identity "$py"))"
    if "$py" -m venv "$VENV" >&2; then
        return 0
    fi
    # Debian's python3 ships venv/ensurepip separately.
    warn "'$py -m venv' failed; installing python3-venv and retrying"
    rm -rf "$VENV"
    need_apt_packages python3-venv
    "$py" -m venv "$VENV" >&2 || die "could not create venv with $py"
}

main() {
    ensure_cache_dir
    write_default_requirements
    [[ -f "$REQ" ]] || die "$REQ is missing"

    take_lock "$CACHE_DIR/venv.lock" 900

    local py want have_id venv_py="$VENV/bin/python"
    py="$(base_python)"
    have_id="$(python_identity "$py")"

    # Rebuild when the venv is broken or was made by another interpreter.
    if [[ ! -x "$venv_py" ]] || [[ "$(python_identity "$venv_py" 2>/dev/null || true)" != "$have_id" ]]; then
        create_venv "$py"
    fi

    want="$( (cat "$REQ"; echo "$have_id") | sha256sum | cut -d' ' -f1)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        log "venv up to date ($REQ unchanged)"
    else
        log "installing $REQ into $VENV"
        rm -f "$STAMP"
        PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$venv_py" -m pip install -q -r "$REQ" >&2 \
            || die "pip install -r $REQ failed"
        echo "$want" >"$STAMP"
    fi
    echo "$venv_py"
}

main "$@"
