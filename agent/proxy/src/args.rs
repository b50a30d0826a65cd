//! The agent's command line: which files it reads and where it listens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `mesh-agent`: the mesh sidecar proxy.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "mesh-agent", version, about)]
pub struct Args {
    /// The workload config written by `meshc compile` (watched; reloaded on change).
    #[arg(long)]
    pub config: PathBuf,
    /// Where endpoints come from: a watched file, or the Kubernetes API.
    #[arg(long, value_enum, default_value_t = DiscoveryKind::File)]
    pub discovery: DiscoveryKind,
    /// The endpoints file (with `--discovery file`): where each service's instances are
    /// (watched).
    #[arg(long, required_if_eq("discovery", "file"))]
    pub endpoints: Option<PathBuf>,
    /// With `--discovery kubernetes`: the port of the peers' agents' inbound listeners,
    /// which requests to an endpoint's address go to.
    #[arg(long, default_value_t = 15006)]
    pub peer_port: u16,
    /// Directory with this workload's certificate, key and CA bundle (used by mTLS).
    #[arg(long)]
    pub identity_dir: Option<PathBuf>,
    /// Outbound proxy listener: the app sends its requests here (`HTTP_PROXY`).
    #[arg(long, default_value = "127.0.0.1:15001")]
    pub outbound: SocketAddr,
    /// Inbound listener: other workloads' agents call this workload here.
    #[arg(long, default_value = "127.0.0.1:15006")]
    pub inbound: SocketAddr,
    /// Admin listener: /live, /ready, /metrics, /config.
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin: SocketAddr,
    /// The local app, where inbound requests are forwarded.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub app: SocketAddr,
    /// Where the app serves a port other than `--app`'s, for opaque TCP: `PORT=ADDR`
    /// (repeatable). Without one, port P is `--app`'s host on port P.
    #[arg(long = "app-port", value_parser = parse_app_port)]
    pub app_ports: Vec<(u16, SocketAddr)>,
    /// How long protocol detection waits for a captured connection's first bytes before
    /// treating it as opaque TCP (server-speaks-first protocols send nothing).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub detect_timeout: Duration,
    /// How often files are re-read even without a change event.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub resync: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain_timeout: Duration,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long an HTTP/1 client may take to send a request head, counted from when the
    /// connection is ready for it (so also how long a keep-alive connection may idle).
    #[arg(long, value_parser = parse_nonzero_duration, default_value = "10s")]
    pub header_read_timeout: Duration,
    /// How long a connection may move no byte either way before it is closed (HTTP/2
    /// connections between streams, upgraded connections, admin streams).
    #[arg(long, value_parser = parse_nonzero_duration, default_value = "1h")]
    pub idle_timeout: Duration,
    /// Open connections per listener at most; beyond, new ones wait in the backlog.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// HTTP/2 streams per connection at most.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_streams: u32,
    /// Threads that run the proxy: 1 runs everything on one thread (no cross-thread
    /// wake-ups, the cheapest per request); the default is Istio's sidecar concurrency.
    #[arg(long, env = "MESH_AGENT_THREADS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Runs the workload as the ingress gateway NAME: the config must have a `gateway`
    /// section of that name (and without this flag, a config with one is refused). A
    /// gateway serves its config's listeners instead of the outbound and inbound ones.
    #[arg(long, value_name = "NAME")]
    pub gateway: Option<String>,
    /// With `--gateway`: the IP the gateway's listeners bind, each on its config port.
    #[arg(long, value_name = "IP", requires = "gateway",
          default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub gateway_address: IpAddr,
    /// With `--gateway`: binds the listener of config port PORT at ADDR instead of
    /// `--gateway-address`:PORT (repeatable; `8443=127.0.0.1:0` picks a free port, which
    /// the bound-addresses line and the admin `/gateway` endpoint report).
    #[arg(long = "gateway-port", value_name = "PORT=ADDR", requires = "gateway",
          value_parser = parse_app_port)]
    pub gateway_ports: Vec<(u16, SocketAddr)>,
    /// Where sampled requests' spans are exported with OTLP/HTTP (protobuf): a base URL
    /// such as `http://127.0.0.1:4318`, to which `/v1/traces` is appended. Without one
    /// (or empty), trace context is still propagated but no span is recorded.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT",
          value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// Finished spans waiting for the OTLP exporter at most; beyond, new ones are dropped
    /// (and counted in `mesh_trace_spans_dropped_total`) rather than slowing requests.
    #[arg(long, default_value_t = 2048, value_name = "SPANS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub otlp_queue: u32,
}

/// `--otlp-endpoint`'s value: an endpoint, or none for an empty value (OpenTelemetry
/// reads an empty variable as unset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpEndpoint(pub Option<crate::trace::export::Endpoint>);

impl Args {
    /// The OTLP endpoint spans are exported to, if any.
    pub fn otlp(&self) -> Option<&crate::trace::export::Endpoint> {
        self.otlp_endpoint.as_ref().and_then(|e| e.0.as_ref())
    }

    /// Where the gateway listener of config port `port` binds.
    pub fn gateway_bind(&self, port: u16) -> SocketAddr {
        self.gateway_ports
            .iter()
            .rev()
            .find(|(p, _)| *p == port)
            .map_or(SocketAddr::new(self.gateway_address, port), |(_, addr)| {
                *addr
            })
    }
}

/// Sources of endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiscoveryKind {
    /// The JSON file given by `--endpoints`.
    File,
    /// EndpointSlices, Pods and Services, watched through the Kubernetes API (kubeconfig
    /// or in-cluster service account); needs the `kubernetes` feature.
    Kubernetes,
}

/// Log line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `PORT=ADDR`: where the app serves a port.
pub fn parse_app_port(text: &str) -> Result<(u16, SocketAddr), String> {
    let (port, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not PORT=ADDR"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an address (IP:PORT)"))?;
    Ok((port, addr))
}

/// An OTLP/HTTP base URL (`http://HOST:PORT[/PREFIX]`).
pub fn parse_otlp_endpoint(text: &str) -> Result<OtlpEndpoint, String> {
    if text.trim().is_empty() {
        return Ok(OtlpEndpoint(None));
    }
    crate::trace::export::Endpoint::parse(text)
        .map(|e| OtlpEndpoint(Some(e)))
        .map_err(|e| e.to_string())
}

/// A duration that must not be zero (a zero header-read timeout would close every
/// connection before its first byte).
pub fn parse_nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("`{text}` must be longer than zero")),
        duration => Ok(duration),
    }
}

/// `250ms`, `5s`, `1m`: the duration syntax of `.mesh` files, read by the same parser as
/// the language's duration literals (`mesh_config::vocab::duration`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    mesh_config::vocab::duration::parse(text)
        .map(|d| d.to_std())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let base = ["mesh-agent", "--config", "c.json", "--endpoints", "e.json"];
        Args::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn threads_take_one_or_more_and_name_the_flag_otherwise() {
        assert_eq!(parse(&["--threads", "1"]).map(|a| a.threads).ok(), Some(1));
        assert_eq!(parse(&["--threads", "8"]).map(|a| a.threads).ok(), Some(8));
        let zero = parse(&["--header-read-timeout", "0s"])
            .err()
            .map(|e| e.to_string());
        assert!(
            zero.as_deref()
                .is_some_and(|e| e.contains("longer than zero")),
            "{zero:?}"
        );
        for bad in ["0", "257", "many"] {
            let error = parse(&["--threads", bad]).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("--threads")),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn gateway_listeners_bind_the_address_unless_a_port_is_overridden() {
        let args = parse(&[
            "--gateway",
            "public",
            "--gateway-address",
            "127.0.0.2",
            "--gateway-port",
            "8443=127.0.0.1:0",
        ])
        .ok();
        let bind = |port| args.as_ref().map(|a| a.gateway_bind(port).to_string());
        assert_eq!(bind(8443).as_deref(), Some("127.0.0.1:0"));
        assert_eq!(bind(8080).as_deref(), Some("127.0.0.2:8080"));
        let default = parse(&["--gateway", "public"]).ok();
        assert_eq!(
            default.map(|a| a.gateway_bind(80).to_string()).as_deref(),
            Some("0.0.0.0:80")
        );
        let error = parse(&["--gateway", "public", "--gateway-port", "8443"])
            .err()
            .map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("PORT=ADDR")),
            "{error:?}"
        );
        let error = parse(&["--gateway-port", "8443=127.0.0.1:0"])
            .err()
            .map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("--gateway <NAME>")),
            "{error:?}"
        );
    }

    #[test]
    fn the_otlp_endpoint_is_an_http_url_or_empty() {
        let args = parse(&["--otlp-endpoint", "http://127.0.0.1:4318"]).ok();
        let url = args
            .as_ref()
            .and_then(|a| a.otlp())
            .map(|e| e.traces().to_string());
        assert_eq!(url.as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
        let empty = parse(&["--otlp-endpoint", ""]).ok();
        assert!(empty.is_some_and(|a| a.otlp().is_none()));
        let error = parse(&["--otlp-endpoint", "https://collector:4318"])
            .err()
            .map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("only http://")),
            "{error:?}"
        );
    }

    #[test]
    fn duration_flags_take_the_language_syntax() {
        for (flag, text, micros) in [
            ("--drain-timeout", "500us", 500),
            ("--resync", "250ms", 250_000),
            ("--detect-timeout", "2s", 2_000_000),
            ("--drain-timeout", "1m", 60_000_000),
            ("--resync", "1h", 3_600_000_000),
        ] {
            let args = parse(&[flag, text]).ok();
            let got = args.map(|a| match flag {
                "--drain-timeout" => a.drain_timeout,
                "--resync" => a.resync,
                _ => a.detect_timeout,
            });
            assert_eq!(
                got,
                Some(std::time::Duration::from_micros(micros)),
                "{text}"
            );
        }
        for bad in ["10", "1.5s", "1m30s", "10sec", "s"] {
            let error = parse(&["--drain-timeout", bad])
                .err()
                .map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains(&format!("`{bad}`"))),
                "{bad}: {error:?}"
            );
        }
    }
}
