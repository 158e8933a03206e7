#!/usr/bin/env bash
# Everything `make test` runs, in order, with a timing for each stage:
#   1. cargo test --no-run     build every test target (and the regis binary)
#      local/valkey.sh         Valkey for the tests that run on both engines
#                              (REGIS_VALKEY_SERVER, unless already set)
#   2. local/up.sh             the local multi-region environment
#   3. cargo test --workspace  unit, integration and end-to-end tests
#   4. local/fuzz.sh smoke     the decoder's fuzz target builds and survives a short run
#   5. infra/check.sh          Terraform checks, when that script exists
#   6. local/down.sh           always (trap), even after a failure
# Exits with the status of the first stage that failed.
#
# If the environment was already running before (a developer's `make up`),
# it is reused and left running: this script stops only what it started.
set -euo pipefail

# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REGIS_ROOT"
export REGIS_ENV_FILE

first_failure=0
timings=()

# run_stage NAME CMD...: run, time, remember the first failure; never exits.
run_stage() {
    local name="$1" start=$SECONDS status=0
    shift
    log "=== $name: $*"
    "$@" || status=$?
    timings+=("$(printf '%-22s %4ss  %s' "$name" "$((SECONDS - start))" \
        "$([ "$status" -eq 0 ] && echo ok || echo "FAILED ($status)")")")
    if [ "$status" -ne 0 ] && [ "$first_failure" -eq 0 ]; then
        first_failure=$status
    fi
    return 0
}

already_up=0
if [ -f "$REGIS_ENV_FILE" ] && running_pid redis-"$(topology_regions | sed -n 1p)" redis-server >/dev/null; then
    already_up=1
fi

finish() {
    trap - EXIT INT TERM
    if [ "$already_up" -eq 1 ]; then
        log "environment was running before make test: left running (make down stops it)"
    else
        run_stage down local/down.sh
    fi
    log "=== timings"
    printf '  %s\n' "${timings[@]}" >&2
    log "total ${SECONDS}s; $([ "$first_failure" -eq 0 ] && echo 'all stages passed' || echo "first failure status $first_failure")"
    exit "$first_failure"
}
trap finish EXIT
# Interrupted: still stop the environment (the EXIT trap), and fail.
trap 'if [ "$first_failure" -eq 0 ]; then first_failure=130; fi; exit' INT TERM

# Build every test target first, the regis binary among them: building it
# once with the features the test targets unify to saves building the async
# stack twice (a plain `cargo build -p regis-cli` resolves other features).
run_stage build cargo test --workspace --no-run
# The apply and property tests run on Redis and on Valkey; the testkit finds
# valkey-server through REGIS_VALKEY_SERVER.
install_valkey() {
    REGIS_VALKEY_SERVER="$(local/valkey.sh)" || return
    export REGIS_VALKEY_SERVER
}
if [ "$first_failure" -eq 0 ] && [ -z "${REGIS_VALKEY_SERVER:-}" ]; then
    run_stage valkey install_valkey
fi
if [ "$first_failure" -eq 0 ]; then
    REGIS_SKIP_BUILD=1 run_stage up local/up.sh
fi
if [ "$first_failure" -eq 0 ]; then
    run_stage "cargo test" cargo test --workspace --no-fail-fast
    # The decoder's fuzz target (fuzz/, outside the workspace) must build,
    # and a short run over the seeds must find nothing. Without cargo-fuzz's
    # coverage instrumentation libFuzzer mutates blindly: a smoke test, not
    # a fuzzing campaign (`make fuzz` runs that).
    run_stage fuzz-smoke local/fuzz.sh smoke
    if [ -x infra/check.sh ]; then
        run_stage infra/check.sh infra/check.sh
    else
        log "infra/check.sh not present: skipped"
    fi
fi
