#!/usr/bin/env bash
# A plain-HTTP image registry on loopback for the tests: Debian's docker-registry
# (distribution 2.8) with a generated config, no auth, storage under DIR.
#
#   scripts/registry.sh start [DIR] [PORT]   start it (if not yet running), wait for /v2/
#   scripts/registry.sh ensure [DIR] [PORT]  start it, or use the registry that already
#                                            answers on PORT (another checkout's)
#   scripts/registry.sh stop [DIR]           stop it (DIR keeps the pushed images)
#   scripts/registry.sh status [DIR]
#
# DIR defaults to $RKUBE_REGISTRY_DIR or target/registry, PORT to $RKUBE_REGISTRY_PORT or
# 5050; it listens on $RKUBE_REGISTRY_ADDR (default 127.0.0.1). DIR holds config.yml,
# registry.pid, registry.log and storage/.
# Push to it with: scripts/images.sh --push 127.0.0.1:PORT
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN=/usr/bin/docker-registry
cmd="${1:-}"; [ $# -gt 0 ] && shift
dir="${1:-${RKUBE_REGISTRY_DIR:-$here/../target/registry}}"
port="${2:-${RKUBE_REGISTRY_PORT:-5050}}"
addr="${RKUBE_REGISTRY_ADDR:-127.0.0.1}"

usage() { echo "usage: $0 start|ensure [DIR] [PORT] | stop [DIR] | status [DIR]" >&2; exit 2; }

running_pid() {
    local pid
    pid="$(cat "$dir/registry.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$BIN" ] || return 1
    echo "$pid"
}

answers() { curl -fsS -o /dev/null --max-time 2 "http://$addr:$1/v2/" 2>/dev/null; }

case "$cmd" in
ensure)
    if ! running_pid >/dev/null && answers "$port"; then
        echo "registry: one already answers on $addr:$port (not started from $dir): using it"
        exit 0
    fi
    exec "$0" start "$dir" "$port"
    ;;
start)
    [ -x "$BIN" ] || { echo "registry: $BIN is missing: run scripts/deps.sh (package docker-registry)" >&2; exit 1; }
    [[ "$port" =~ ^[0-9]+$ ]] || usage
    mkdir -p "$dir/storage"
    dir="$(cd "$dir" && pwd)"
    if pid="$(running_pid)"; then
        if answers "$port"; then echo "registry: already running (pid $pid) on $addr:$port"; exit 0; fi
        echo "registry: running (pid $pid) from $dir but not answering on port $port: run '$0 stop $dir' first" >&2
        exit 1
    fi
    if answers "$port"; then
        echo "registry: something else already answers on $addr:$port: choose another port (or use '$0 ensure')" >&2
        exit 1
    fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $addr:$port
  secret: rkube-test-registry
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    # setsid: its own session, so the caller's Ctrl-C or exit does not take it down.
    setsid "$BIN" serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
    for _ in $(seq 100); do
        if answers "$port"; then echo "registry: serving on $addr:$port (storage $dir/storage)"; exit 0; fi
        if ! running_pid >/dev/null; then
            echo "registry: docker-registry exited at start; its log ($dir/registry.log) ends with:" >&2
            tail -n 5 "$dir/registry.log" >&2
            rm -f "$dir/registry.pid"; exit 1
        fi
        sleep 0.1
    done
    echo "registry: no answer on http://$addr:$port/v2/ after 10 s: see $dir/registry.log" >&2
    exit 1
    ;;
stop)
    if pid="$(running_pid)"; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "registry: stopped (pid $pid)"
    else
        echo "registry: not running ($dir)"
    fi
    rm -f "$dir/registry.pid"
    ;;
status)
    if pid="$(running_pid)"; then echo "registry: running (pid $pid), $(grep -m1 'addr:' "$dir/config.yml" | tr -d ' ')"
    else echo "registry: not running ($dir)"; exit 1; fi
    ;;
*) usage ;;
esac
