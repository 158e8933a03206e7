#!/usr/bin/env bash
# Start or stop the `regis worker` of one region of the local environment.
#
#   local/worker.sh start   <region>   start it unless it is running
#   local/worker.sh ensure  <region>   start it, or restart it if the binary
#                                      was rebuilt since it started
#   local/worker.sh stop    <region>   TERM, wait, KILL
#   local/worker.sh restart <region>
#   local/worker.sh status  <region>   exit 0 when running (prints the pid)
#
# Queue URLs, Redis URL and endpoint come from .regis/env.json (written by
# up.sh), so a test that killed a worker restarts it exactly as up.sh did.
# REGIS_BIN overrides the binary (default target/debug/regis);
# REGIS_WORKER_ARGS adds flags (e.g. "--mode plain"); RUST_LOG defaults to info.
#
# Long polls are 5 s here (REGIS_WORKER_WAIT_SECONDS), not the worker's 20:
# when a worker stops, LocalStack keeps serving its abandoned ReceiveMessage
# calls until their wait ends, and a message handed to a dead connection only
# reappears after the visibility timeout. Short polls keep that window small
# after a restart, at about one request per second per worker when idle.
set -euo pipefail

# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: $0 start|ensure|stop|restart|status <region>"; }
[ $# -eq 2 ] || usage
action="$1"
region="$2"
name="worker-$region"
marker="$(marker_for "$name")"
REGIS_BIN="${REGIS_BIN:-$REGIS_ROOT/target/debug/regis}"

start() {
    [ -f "$REGIS_ENV_FILE" ] || die "$REGIS_ENV_FILE is missing: run local/up.sh first"
    [ -x "$REGIS_BIN" ] || die "$REGIS_BIN is missing: cargo build -p regis-cli"
    local cfg
    # One line: endpoint, queue url, dlq url, redis url.
    cfg="$(python3 -c '
import json, sys
env = json.load(open(sys.argv[1]))
region = [r for r in env["regions"] if r["name"] == sys.argv[2]]
if not region:
    sys.exit("region %s is not in %s" % (sys.argv[2], sys.argv[1]))
r = region[0]
print(env["endpoint_url"], r["queue_url"], r["dlq_url"], r["redis_url"])
' "$REGIS_ENV_FILE" "$region")"
    local endpoint queue_url dlq_url redis_url
    read -r endpoint queue_url dlq_url redis_url <<<"$cfg"

    # The tenant registry the workers enforce: the topology's, as written to
    # the environment file (one document, the shape of REGIS_TENANTS).
    local tenants
    tenants="$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])).get("tenants", {})))' "$REGIS_ENV_FILE")"

    local logfile="$REGIS_LOGS/$name.log"
    # Until the local environment creates signing secrets, its workers are
    # told explicitly that unsigned traffic is intended.
    # shellcheck disable=SC2086 # REGIS_WORKER_ARGS is a list of flags.
    AWS_ENDPOINT_URL="$endpoint" \
    AWS_ACCESS_KEY_ID=test \
    AWS_SECRET_ACCESS_KEY=test \
    AWS_REGION="$region" \
    AWS_EC2_METADATA_DISABLED=true \
    RUST_LOG="${RUST_LOG:-info}" \
    NO_COLOR=1 \
    REGIS_TENANTS="$tenants" \
    REGIS_ALLOW_UNSIGNED="${REGIS_ALLOW_UNSIGNED:-true}" \
        start_bg "$name" "$logfile" "$REGIS_BIN" worker \
            --region "$region" \
            --queue-url "$queue_url" \
            --dlq-url "$dlq_url" \
            --redis-url "$redis_url" \
            --wait-seconds "${REGIS_WORKER_WAIT_SECONDS:-5}" \
            ${REGIS_WORKER_ARGS:-}

    # A worker that cannot start (bad flag, unreachable endpoint) exits at
    # once; catch that here rather than in a test ten minutes later.
    sleep 1
    local pid
    pid="$(cat "$REGIS_PIDS/$name.pid")"
    if ! pid_alive "$pid"; then
        log_tail "$logfile"
        rm -f "$REGIS_PIDS/$name.pid"
        die "worker for $region exited right after starting"
    fi
    log "worker $region started (pid $pid, log $logfile)"
}

case "$action" in
start)
    if pid="$(running_pid "$name" "$marker")"; then
        log "worker $region already running (pid $pid)"
    else
        start
    fi
    ;;
ensure)
    if pid="$(running_pid "$name" "$marker")"; then
        if [ "$REGIS_BIN" -nt "$REGIS_PIDS/$name.pid" ]; then
            log "worker $region runs an older build; restarting"
            stop_pid "$name"
            start
        else
            log "worker $region already running (pid $pid)"
        fi
    else
        start
    fi
    ;;
stop) stop_pid "$name" ;;
restart)
    stop_pid "$name"
    start
    ;;
status)
    running_pid "$name" "$marker" || exit 1
    ;;
*) usage ;;
esac
