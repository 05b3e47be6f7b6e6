#!/usr/bin/env bash
# A MoeCluster cluster of separate processes on loopback.
#   deploy/local/cluster.sh up N     start N nodes (node 0: gateway+attention, others: experts; N=1: all roles)
#   deploy/local/cluster.sh status   members and where every expert lives
#   deploy/local/cluster.sh add      start one more expert node (it takes over a fair share of experts)
#   deploy/local/cluster.sh remove   stop the newest expert node gracefully (SIGTERM: it hands its experts off)
#   deploy/local/cluster.sh down     stop every node
# Settings (environment): MODEL (default: the built-in model), BASE_PORT (4053), BASE_HTTP_PORT (8080), STATE (./.data/local-cluster)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
state="${STATE:-$root/.data/local-cluster}"
base_port="${BASE_PORT:-4053}"
base_http="${BASE_HTTP_PORT:-8080}"
model="${MODEL:-$root/models/moe-tiny-fortunes}"
bin="$root/src/MoeCluster.Node/bin/Release/net10.0/moecluster.dll"
mkdir -p "$state"

build() {
  # Rebuild when asked, when there is no build yet, or when any source is newer than it (a stale binary would run old code).
  if [ -n "${REBUILD:-}" ] || [ ! -f "$bin" ] || [ -n "$(find "$root/src" -name '*.cs' -newer "$bin" -print -quit)" ]; then
    echo "building src/MoeCluster.Node (Release)…"
    dotnet build "$root/src/MoeCluster.Node" -c Release -v quiet -nologo >/dev/null
  fi
}

running() { for f in "$state"/node-*.pid; do [ -e "$f" ] || continue; kill -0 "$(cat "$f")" 2>/dev/null && basename "$f" .pid | cut -d- -f2; done | sort -n; }

start_node() {
  local i=$1 roles=$2 min=${3:-1}
  local port=$((base_port + i)) http=$((base_http + i))
  nohup dotnet "$bin" serve --model "$model" --roles "$roles" --hostname 127.0.0.1 --port "$port" \
    --http-host 127.0.0.1 --http-port "$http" --seed-nodes "akka.tcp://moecluster@127.0.0.1:$base_port" \
    --data-dir "$state/data-$i" --threads 1 --downing-stable-after 5 --min-expert-nodes "$min" >"$state/node-$i.log" 2>&1 &
  echo $! >"$state/node-$i.pid"
  echo "node $i: pid $!  roles $roles  remoting 127.0.0.1:$port  http://127.0.0.1:$http  log $state/node-$i.log"
}

wait_ready() {
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$base_http/readyz" >/dev/null 2>&1; then echo "ready: http://127.0.0.1:$base_http/v1"; return 0; fi
    sleep 1
  done
  echo "cluster not ready after 120 s; see $state/node-0.log" >&2; return 1
}

placement_json() { curl -sf "http://127.0.0.1:$base_http/v1/cluster/placement" || true; }
# Counts from the placement listing (grep finds nothing while the gateway is busy or the node holds none: that is 0).
experts_total() { placement_json | { grep -o '"L[0-9]*\.E[0-9]*":"' || true; } | wc -l; }
experts_on() { placement_json | { grep -o "\"L[0-9]*\.E[0-9]*\":\"[^\"]*:$1\"" || true; } | wc -l; }

status() {
  echo "members:"; curl -sf "http://127.0.0.1:$base_http/v1/cluster/members" | sed 's/},{/}\n{/g' | sed 's/^/  /'; echo
  echo "placement:"; dotnet "$bin" placement --gateway "http://127.0.0.1:$base_http" | sed 's/^/  /'
}

case "${1:-}" in
  up)
    n="${2:-3}"
    [ -z "$(running)" ] || { echo "already running (nodes $(running | tr '\n' ' ')); run '$0 down' first" >&2; exit 1; }
    build
    if [ "$n" -eq 1 ]; then start_node 0 gateway,attention,expert; else
      start_node 0 gateway,attention $((n - 1))
      for i in $(seq 1 $((n - 1))); do start_node "$i" expert $((n - 1)); done
    fi
    wait_ready && status ;;
  add)
    build
    last=$(running | tail -1); new=$((last + 1)); start_node "$new" expert
    # Rebalancing moves a few experts every 10 s until the new node holds its share (total ÷ expert nodes, rounded down).
    port=$((base_port + new)); nodes=$(running | awk '$1 > 0' | wc -l); share=0; held=0
    echo "waiting for the new node to take its share of experts…"
    for _ in $(seq 1 180); do
      total=$(experts_total); share=$((total / nodes)); held=$(experts_on "$port")
      [ "$total" -gt 0 ] && [ "$held" -ge "$share" ] && break
      sleep 1
    done
    echo "node $new holds $held experts (fair share $share)"; status ;;
  remove)
    last=$(running | tail -1)
    [ "${last:-0}" -gt 0 ] || { echo "no expert-only node to remove" >&2; exit 1; }
    pid=$(cat "$state/node-$last.pid"); kill -TERM "$pid"
    for _ in $(seq 1 90); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    rm -f "$state/node-$last.pid"; echo "node $last left"
    for _ in $(seq 1 30); do [ "$(experts_on $((base_port + last)))" -eq 0 ] && break; sleep 1; done
    status ;;
  status) status ;;
  down)
    for i in $(running | sort -rn); do kill -TERM "$(cat "$state/node-$i.pid")" 2>/dev/null || true; done
    for i in $(running); do for _ in $(seq 1 30); do kill -0 "$(cat "$state/node-$i.pid")" 2>/dev/null || break; sleep 1; done; done
    rm -f "$state"/node-*.pid; echo "stopped" ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
