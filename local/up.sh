#!/usr/bin/env bash
# Start the local multi-region environment (`make up`):
#   LocalStack (SNS/SQS for every region) on 127.0.0.1:$REGIS_LOCALSTACK_PORT,
#   one redis-server per region on $REGIS_REDIS_BASE_PORT + index,
#   the topic, queues, DLQs and subscriptions of $REGIS_TOPOLOGY,
#   one `regis worker` per region (skipped with REGIS_NO_WORKERS=1),
# and write what is in use to .regis/env.json.
#
# Idempotent: whatever is already running (pid file + health) is left alone;
# a worker whose binary was rebuilt since it started is restarted.
set -euo pipefail

# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REGIS_ROOT"

LOCALSTACK_TIMEOUT="${REGIS_LOCALSTACK_TIMEOUT:-120}"
mkdir -p "$REGIS_PIDS" "$REGIS_LOGS" "$REGIS_STATE/redis"

# Two `make up` at once would race on the same pid files.
exec 9>"$REGIS_STATE/up.lock"
flock 9

started_at=$SECONDS
step() { log "[$((SECONDS - started_at))s] $*"; }

# --- 1. Install what is missing ---------------------------------------------

if ! command -v redis-server >/dev/null 2>&1; then
    step "installing redis-server"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
fi
# The Debian package starts a system redis on 6379; we never use it, and our
# ports are different, so it is left as the package set it up.

if ! "$REGIS_VENV/bin/python" -c 'import localstack, boto3' >/dev/null 2>&1; then
    step "installing LocalStack into .venv (a few minutes the first time)"
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        # Debian ships venv support separately.
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
    fi
    python3 -m venv "$REGIS_VENV"
    "$REGIS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$REGIS_ROOT/local/localstack-requirements.txt"
fi

# --- 2. LocalStack ------------------------------------------------------------

# Prints nothing; succeeds when sns and sqs are both usable.
localstack_healthy() {
    local body service state
    body="$(curl -fsS --max-time 3 "$REGIS_ENDPOINT/_localstack/health" 2>/dev/null)" || return 1
    for service in sns sqs; do
        state="$(printf '%s' "$body" | json_read - services "$service" 2>/dev/null)" || return 1
        case "$state" in
        running | available) ;;
        *) return 1 ;;
        esac
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

LOCALSTACK_LOG="$REGIS_LOGS/localstack.log"
if ls_pid="$(running_pid localstack localstack.runtime.main)"; then
    step "LocalStack already running (pid $ls_pid)"
elif localstack_healthy; then
    # Started by someone else (another checkout, a developer by hand). Use it,
    # but it is not ours to stop: no pid file, so down.sh leaves it alone.
    rm -f "$REGIS_PIDS/localstack.pid"
    step "using the LocalStack already serving $REGIS_ENDPOINT (not started here; down.sh will not stop it)"
else
    if port_open "$REGIS_LOCALSTACK_PORT"; then
        die "port $REGIS_LOCALSTACK_PORT is in use by something that is not a healthy LocalStack; set REGIS_LOCALSTACK_PORT"
    fi
    step "starting LocalStack on 127.0.0.1:$REGIS_LOCALSTACK_PORT (log $LOCALSTACK_LOG)"
    : >"$LOCALSTACK_LOG"
    # SQS_ENDPOINT_STRATEGY=path with LOCALSTACK_HOST gives queue URLs like
    # http://127.0.0.1:4566/queue/<region>/<account>/<name>, which resolve
    # without LocalStack's DNS (disabled here). FILESYSTEM_ROOT keeps its
    # scratch files inside .regis/.
    SERVICES=sns,sqs,sts,iam,cloudwatch,logs \
    GATEWAY_LISTEN="127.0.0.1:$REGIS_LOCALSTACK_PORT" \
    LOCALSTACK_HOST="127.0.0.1:$REGIS_LOCALSTACK_PORT" \
    SQS_ENDPOINT_STRATEGY=path \
    DNS_ADDRESS=0 \
    FILESYSTEM_ROOT="$REGIS_STATE/localstack" \
        start_bg localstack "$LOCALSTACK_LOG" "$REGIS_VENV/bin/python" -m localstack.runtime.main
fi

deadline=$((SECONDS + LOCALSTACK_TIMEOUT))
until localstack_healthy; do
    if ls_pid="$(cat "$REGIS_PIDS/localstack.pid" 2>/dev/null)" && ! pid_alive "$ls_pid"; then
        log_tail "$LOCALSTACK_LOG"
        die "LocalStack exited during startup"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        log_tail "$LOCALSTACK_LOG"
        die "LocalStack not healthy (sns, sqs) after ${LOCALSTACK_TIMEOUT}s at $REGIS_ENDPOINT"
    fi
    sleep 0.5
done
step "LocalStack healthy"

# --- 3. One redis-server per region -------------------------------------------

mapfile -t REGIONS < <(topology_regions)
redis_jobs=()
for region in "${REGIONS[@]}"; do
    "$REGIS_ROOT/local/redis.sh" start "$region" 9>&- &
    redis_jobs+=("$!")
done
redis_status=0
for job in "${redis_jobs[@]}"; do
    wait "$job" || redis_status=1
done
[ "$redis_status" -eq 0 ] || die "not every redis-server started (see above)"
step "redis up: ${REGIONS[*]} on ports $REGIS_REDIS_BASE_PORT.."

# --- 4. Topology ----------------------------------------------------------------

step "creating topology from $REGIS_TOPOLOGY"
"$REGIS_VENV/bin/python" "$REGIS_ROOT/local/topology.py" \
    --endpoint "$REGIS_ENDPOINT" \
    --topology "$REGIS_TOPOLOGY" \
    --redis-base-port "$REGIS_REDIS_BASE_PORT" \
    --env-file "$REGIS_ENV_FILE"
step "wrote $REGIS_ENV_FILE"

# --- 5. Workers -----------------------------------------------------------------

if [ "${REGIS_NO_WORKERS:-0}" = "1" ]; then
    step "REGIS_NO_WORKERS=1: not starting workers"
else
    if [ ! -f "$REGIS_ROOT/cli/Cargo.toml" ]; then
        die "the regis CLI (cli/) is not in this tree yet, so no workers can start; run with REGIS_NO_WORKERS=1 to bring up everything else"
    fi
    if [ "${REGIS_SKIP_BUILD:-0}" = 1 ] && [ -x "$REGIS_ROOT/target/debug/regis" ]; then
        step "REGIS_SKIP_BUILD=1: using the regis binary already built"
    else
        step "building regis (cargo build -p regis-cli)"
        cargo build --quiet -p regis-cli
    fi
    # In parallel: each start waits a moment to see that the worker stays up.
    worker_jobs=()
    for region in "${REGIONS[@]}"; do
        "$REGIS_ROOT/local/worker.sh" ensure "$region" 9>&- &
        worker_jobs+=("$!")
    done
    worker_status=0
    for job in "${worker_jobs[@]}"; do
        wait "$job" || worker_status=1
    done
    [ "$worker_status" -eq 0 ] || die "not every worker started (see above)"
fi

step "environment up (REGIS_ENV_FILE=$REGIS_ENV_FILE)"
