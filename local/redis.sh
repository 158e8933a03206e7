#!/usr/bin/env bash
# Start or stop the redis-server of one region of the local environment.
#
#   local/redis.sh start  <region>   start it (empty) unless it is running,
#                                    and wait until it answers PING
#   local/redis.sh stop   <region>   TERM, wait, KILL
#   local/redis.sh status <region>   exit 0 when running (prints the pid)
#
# Region i of the topology listens on 127.0.0.1:$REGIS_REDIS_BASE_PORT+i,
# without persistence, in .regis/redis/<region>. up.sh starts every region
# this way, and tests that stop a region's Redis restart it the same way.
set -euo pipefail

# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 2 ] || die "usage: $0 start|stop|status <region>"
action="$1"
region="$2"
name="redis-$region"
port="$(redis_port "$region")"

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; }

case "$action" in
start)
    if pid="$(running_pid "$name" "$(marker_for "$name")")"; then
        log "redis $region already running on $port (pid $pid)"
        exit 0
    fi
    if redis_ping; then
        die "port $port (redis for $region) is in use by a process up.sh did not start; set REGIS_REDIS_BASE_PORT"
    fi
    mkdir -p "$REGIS_STATE/redis/$region"
    start_bg "$name" "$REGIS_LOGS/$name.log" redis-server \
        --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --dir "$REGIS_STATE/redis/$region"
    for _ in $(seq 1 100); do
        redis_ping && exit 0
        sleep 0.1
    done
    log_tail "$REGIS_LOGS/$name.log"
    die "redis for $region does not answer PING on $port"
    ;;
stop) stop_pid "$name" ;;
status) running_pid "$name" "$(marker_for "$name")" || exit 1 ;;
*) die "usage: $0 start|stop|status <region>" ;;
esac
