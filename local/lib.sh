# Shared helpers for the local environment scripts (sourced, not executed).
#
# Every long-running process (LocalStack, one redis-server and one worker per
# region) is started in its own session with `setsid`, and its pid is written
# to `.regis/pids/<name>.pid` by the process itself just before it `exec`s the
# real program. The pid is therefore also the process group id, so stopping
# signals the whole group (LocalStack may fork helpers).

REGIS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGIS_STATE="$REGIS_ROOT/.regis"
REGIS_PIDS="$REGIS_STATE/pids"
REGIS_LOGS="$REGIS_STATE/logs"

REGIS_LOCALSTACK_PORT="${REGIS_LOCALSTACK_PORT:-4566}"
REGIS_REDIS_BASE_PORT="${REGIS_REDIS_BASE_PORT:-6401}"
REGIS_TOPOLOGY="${REGIS_TOPOLOGY:-$REGIS_ROOT/local/topology.json}"
REGIS_ENV_FILE="${REGIS_ENV_FILE:-$REGIS_STATE/env.json}"
REGIS_VENV="$REGIS_ROOT/.venv"
REGIS_ENDPOINT="http://127.0.0.1:$REGIS_LOCALSTACK_PORT"

log() { printf '[regis-local] %s\n' "$*" >&2; }
die() { printf '[regis-local] error: %s\n' "$*" >&2; exit 1; }

# Prefix with sudo only when not root and sudo exists (CI runs as root).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"; fi
}

# True when pid is a live process. A zombie counts as dead: the processes we
# start are orphaned once the starting script exits, and whether the init
# process reaps them promptly depends on the machine.
pid_alive() {
    local pid="$1" state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    # Field 3 of /proc/<pid>/stat is the state; the command name (field 2) is
    # parenthesised and may contain spaces, so cut after the last ')'.
    state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]
}

# Pid recorded for a named process, if that process is alive and its command
# line still contains the expected marker (guards against pid reuse).
# Prints the pid and returns 0, or returns 1.
running_pid() {
    local name="$1" marker="$2" file="$REGIS_PIDS/$1.pid" pid
    [ -f "$file" ] || return 1
    pid="$(cat "$file" 2>/dev/null || true)"
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$marker" || return 1
    printf '%s\n' "$pid"
}

# start_bg NAME LOGFILE CMD [ARGS...]: run CMD detached in its own session,
# stdin from /dev/null, stdout and stderr appended to LOGFILE. Environment
# variables set by the caller (e.g. `FOO=1 start_bg ...` or exports) pass
# through.
start_bg() {
    local name="$1" logfile="$2"
    shift 2
    mkdir -p "$REGIS_PIDS" "$(dirname "$logfile")"
    rm -f "$REGIS_PIDS/$name.pid"
    # The inner shell writes its own pid (the one `exec` keeps) so the pid
    # file is right whether or not setsid had to fork.
    # fd 9 is up.sh's lock: closed, or the daemon would hold it forever.
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$REGIS_PIDS/$name.pid" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    # Wait (briefly) until the pid file exists so callers can rely on it.
    local i
    for i in $(seq 1 50); do
        [ -s "$REGIS_PIDS/$name.pid" ] && return 0
        sleep 0.1
    done
    die "could not start $name (no pid file); see $logfile"
}

# The command-line marker that identifies each kind of process we start.
marker_for() {
    case "$1" in
    localstack) echo "localstack.runtime.main" ;;
    redis-*) echo "redis-server" ;;
    worker-*) echo "worker --region ${1#worker-}" ;;
    *) echo "$1" ;;
    esac
}

# stop_pid NAME: TERM the process group recorded in NAME's pid file, wait up
# to REGIS_STOP_TIMEOUT seconds (default 10), then KILL; remove the pid file.
# Harmless when the pid file is missing or the process is already gone; a pid
# that now belongs to some other program (reused) is not signalled.
stop_pid() {
    local name="$1" file="$REGIS_PIDS/$1.pid" pid i
    [ -f "$file" ] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    if ! running_pid "$name" "$(marker_for "$name")" >/dev/null; then
        rm -f "$file"
        return 0
    fi
    if pid_alive "$pid"; then
        log "stopping $name (pid $pid)"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 $((${REGIS_STOP_TIMEOUT:-10} * 10))); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            log "$name did not stop on TERM; sending KILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    # Whatever else is left in the group (helpers) goes too.
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$file"
}

# json_read FILE KEY...: print the value found by following KEY... from the
# top of the JSON document in FILE ("-": standard input): an object's member,
# a list's index, or "*" for every element of a list. Fails when a key is
# missing. Strings and numbers print as they are,
# anything else as JSON, one value a line. The one JSON reader of these
# scripts (the system python3 is always there; the venv may not be yet).
json_read() {
    python3 -c '
import json, sys

def walk(value, keys):
    if not keys:
        return [value]
    key, rest = keys[0], keys[1:]
    if key == "*":
        return [found for item in value for found in walk(item, rest)]
    return walk(value[int(key)] if isinstance(value, list) else value[key], rest)

if sys.argv[1] == "-":
    document = json.load(sys.stdin)
else:
    with open(sys.argv[1], encoding="utf-8") as f:
        document = json.load(f)
for value in walk(document, sys.argv[2:]):
    print(value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else json.dumps(value))
' "$@"
}

# Region names from the topology, one a line, in order (index i -> port base+i).
topology_regions() {
    json_read "$REGIS_TOPOLOGY" regions '*' name
}

# redis_port REGION: the port of a region's redis-server (base + index).
redis_port() {
    local names index
    mapfile -t names < <(topology_regions)
    for index in "${!names[@]}"; do
        if [ "${names[$index]}" = "$1" ]; then
            echo $((REGIS_REDIS_BASE_PORT + index))
            return 0
        fi
    done
    die "region $1 is not in $REGIS_TOPOLOGY"
}

# Show the last lines of a log, for error messages.
log_tail() {
    local file="$1"
    if [ -f "$file" ]; then
        printf -- '----- last lines of %s -----\n' "$file" >&2
        tail -n "${2:-40}" "$file" >&2
        printf -- '-----\n' >&2
    fi
}
