#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a while: `scripts/fuzz.sh [seconds per target]`.
#
# The targets (fuzz/fuzz_targets/): tool_arguments, datetime, recurrence, events. Each starts
# from its checked-in corpus (fuzz/corpus/<target>/, which the ordinary test suite replays on
# stable) and grows it; a crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
# Needs a nightly toolchain and cargo-fuzz, both installed here on first use.
#
# Environment: FUZZ_SECONDS (default 60, or the first argument), FUZZ_TARGETS (default: all).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO/fuzz"

seconds="${1:-${FUZZ_SECONDS:-60}}"
targets="${FUZZ_TARGETS:-tool_arguments datetime recurrence events}"

have rustup || die "rustup is needed to install the nightly toolchain cargo-fuzz requires"
rustup toolchain list | grep -q '^nightly' || {
    log "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
}
have cargo-fuzz || {
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
}

for target in $targets; do
    log "fuzzing $target for ${seconds}s"
    # Checked-in seeds stay as they are; what the fuzzer finds goes to a scratch directory.
    scratch="$REPO/fuzz/target/corpus/$target"
    mkdir -p "$scratch"
    output="$REPO/fuzz/target/$target.log"
    status=0
    cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$output" 2>&1 || status=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$output" >&2 || true
    [[ "$status" == 0 ]] || {
        tail -40 "$output" >&2
        die "$target found a failing input (see fuzz/artifacts/$target/ and $output)"
    }
done
log "no failing input in ${seconds}s per target"
