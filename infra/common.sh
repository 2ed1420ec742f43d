# Shared helpers of the infra/ scripts. Sourced, never run.
# Every path is derived from this file's location, so the scripts work from any cwd
# and in any clone.

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$INFRA_DIR/.." && pwd)"
VAR="$ROOT/var"
LOG_DIR="$VAR/log"

# The Python that has (or gets) the project installed. Overridable.
PYTHON="${PYTHON:-python3}"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: true if something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# pid_alive PIDFILE PATTERN: true if the pid in PIDFILE runs and its command line
# contains PATTERN (guards against a stale pid file whose pid was reused).
pid_alive() {
    local pidfile="$1" pattern="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# service_status NAME PIDFILE PATTERN PROBE FAILURE ADDRESS: exit 0 when the process
# runs and PROBE (a function) succeeds, 1 when it runs but PROBE fails (FAILURE says
# how), 3 when it does not run.
service_status() {
    local name="$1" pidfile="$2" pattern="$3" probe="$4" failure="$5" address="$6"
    if pid_alive "$pidfile" "$pattern"; then
        if "$probe"; then
            echo "$name: running (pid $(cat "$pidfile")) on $address"
            return 0
        fi
        echo "$name: process running (pid $(cat "$pidfile")) but $failure on $address"
        return 1
    fi
    echo "$name: not running"
    return 3
}

# stop_pid PIDFILE PATTERN NAME [GRACE_SECONDS]: TERM, wait, then KILL; only that pid.
stop_pid() {
    local pidfile="$1" pattern="$2" name="$3" grace="${4:-30}" pid i
    if ! pid_alive "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        log "$name: not running"
        return 0
    fi
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: still running after ${grace}s, sending KILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
