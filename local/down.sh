#!/usr/bin/env bash
# Stop the local environment (`make down`): every process up.sh or worker.sh
# started, found by its pid file in .regis/pids/ — workers first (they poll
# the queues and write to Redis), then the redis-servers, then LocalStack.
# A LocalStack that up.sh found already running (no pid file) is left alone.
#
# Harmless when nothing is running. Logs (.regis/logs/) stay for inspection;
# the Redis data dirs hold nothing (persistence is off) and stay too;
# .regis/env.json is removed, since it would describe queues that are gone.
set -euo pipefail

# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -d "$REGIS_PIDS" ] || exit 0
exec 9>"$REGIS_STATE/up.lock"
flock 9

shopt -s nullglob
for pattern in 'worker-*' 'redis-*' 'localstack'; do
    for file in "$REGIS_PIDS"/$pattern.pid; do
        stop_pid "$(basename "$file" .pid)"
    done
done
rm -f "$REGIS_ENV_FILE"
log "environment down"
