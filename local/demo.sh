#!/usr/bin/env bash
# `make demo`: bring the local environment up, run the sample service
# (regis-demo) that replicates a hotel-like workload to every region and
# reports per region, then stop the environment again, unless KEEP=1 or it
# was already running before. Exits with the demo's status: non-zero when a
# region did not converge.
set -euo pipefail

# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REGIS_ROOT"
export REGIS_ENV_FILE

already_up=0
if [ -f "$REGIS_ENV_FILE" ] && running_pid redis-"$(topology_regions | sed -n 1p)" redis-server >/dev/null; then
    already_up=1
fi

finish() {
    local status=$?
    if [ "${KEEP:-0}" = "1" ]; then
        log "KEEP=1: environment left running (make down stops it)"
    elif [ "$already_up" -eq 1 ]; then
        log "environment was running before make demo: left running (make down stops it)"
    else
        local/down.sh || true
    fi
    exit "$status"
}
trap finish EXIT

local/up.sh
cargo build --quiet -p regis-demo
target/debug/regis-demo
