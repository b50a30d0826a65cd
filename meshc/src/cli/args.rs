//! The command line of `meshc`: every subcommand and its options, as clap derives them.
//! Kept apart from the dispatch so that `--help` text and behaviour are read in one place.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meshc",
    version,
    about = "The mesh policy compiler: check, format and compile .mesh files"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check .mesh files and report every problem.
    Check {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        /// How to report: human (stderr), or json, sarif, github (stdout).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Check a mesh and write one config per workload, the Cedar schema and an index.
    Compile {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Run the mesh's `test` blocks against its compiled configs.
    Test {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
    },
    /// Show what the mesh does with one request or TCP connection: routing and
    /// authorization.
    Explain {
        /// Files or directories (searched recursively for *.mesh).
        path: PathBuf,
        /// The calling service (`name` or `namespace/name`).
        #[arg(long)]
        from: String,
        /// The called service.
        #[arg(long)]
        to: String,
        /// HTTP method.
        #[arg(required_unless_present = "connect")]
        method: Option<String>,
        /// Path (with an optional query string).
        #[arg(required_unless_present = "connect")]
        url_path: Option<String>,
        /// Explain an opaque TCP connection to this port of the called service instead
        /// of an HTTP request.
        #[arg(long, value_name = "PORT", conflicts_with_all = ["method", "url_path", "headers"])]
        connect: Option<u16>,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// human or json.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
        format: ExplainFormat,
    },
    /// Show which requests change authorization decision or route between two versions
    /// of a mesh.
    ///
    /// Exit 0: no change; 1: changes (with --deny widen: only access widened); 2: the
    /// versions cannot be compared.
    Diff {
        /// OLD and NEW: files or directories; with --git, only the one path to compare
        /// with its version at REV.
        #[arg(required = true, num_args = 1..=2, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Compare PATH with the same path at this git revision (the old version).
        #[arg(long, value_name = "REV")]
        git: Option<String>,
        /// human or json.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
        format: ExplainFormat,
        /// Exit 1 only for changes of this kind: `widen` (a request allowed that was not).
        #[arg(long, value_enum, value_name = "KIND")]
        deny: Option<DiffDeny>,
    },
    /// Run the whole mesh on this machine: an agent and a demo app per workload.
    Up {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// First of the loopback ports to use (4 per workload); 0 picks free ones.
        #[arg(long, default_value_t = 15000)]
        base_port: u16,
        /// Write the workloads' addresses to FILE (JSON) once everything is ready.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Recompile when a .mesh file changes; the agents hot-reload.
        #[arg(long)]
        watch: bool,
        /// Run each workload in its own network namespace with its own IP and transparent
        /// capture: apps call services by plain address, with no proxy settings (needs
        /// root; --state adds each workload's `ip` and `netns` and each service's `address`).
        #[arg(long)]
        isolated: bool,
        /// Export every agent's spans of sampled requests to this OTLP/HTTP collector
        /// (e.g. `http://127.0.0.1:4318`); sampling is the mesh's `telemetry { tracing N% }`
        /// or the callers' `traceparent`.
        #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT",
              value_parser = otlp_endpoint)]
        otlp_endpoint: Option<String>,
    },
    /// Create the mesh CA and issue workload certificates.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Rewrite .mesh files in the canonical layout.
    Fmt {
        /// Report files that are not formatted (exit 1) instead of rewriting them.
        #[arg(long)]
        check: bool,
        /// Files or directories (searched recursively for *.mesh).
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
    },
    /// Translate Istio and Gateway API YAML into a formatted .mesh.
    ///
    /// Reads VirtualService, DestinationRule, AuthorizationPolicy, PeerAuthentication,
    /// ServiceEntry, and HTTPRoute and GRPCRoute attached to Services (GAMMA). Every field
    /// that cannot be expressed is reported with its YAML path and the mesh is still
    /// written (exit 1); nothing is written for malformed YAML or unknown kinds (exit 2).
    Import {
        /// YAML files (multi-document streams), or `-` for stdin.
        #[arg(default_value = "-")]
        files: Vec<PathBuf>,
        /// Where to write the .mesh (default: stdout).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Write the mesh's Kubernetes objects (ConfigMaps, identity Secrets, RBAC) as YAML.
    Manifests {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The mesh CA directory (`ca.pem`, `ca-key.pem`) that issues identity certificates.
        #[arg(long)]
        ca: PathBuf,
        /// Output directory (one file per object), or `-` for one stream on stdout.
        #[arg(short, long)]
        out: PathBuf,
        /// The mesh-agent image gateways run.
        #[arg(long, default_value = mesh_kube::inject::DEFAULT_IMAGE)]
        image: String,
        #[command(flatten)]
        injector: InjectorArgs,
        #[command(flatten)]
        issuer: IssuerArgs,
    },
    /// Server-side apply the mesh's Kubernetes objects to a cluster.
    Apply {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The mesh CA directory; without it identity Secrets are left alone.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The kubeconfig context (default: the current one).
        #[arg(long)]
        context: Option<String>,
        /// Only show what would change: compared on the client, or checked by the server.
        #[arg(long, value_enum)]
        dry_run: Option<DryRunArg>,
        /// Delete objects labelled with this mesh that it no longer produces.
        #[arg(long)]
        prune: bool,
        /// Take over fields that other field managers own.
        #[arg(long)]
        force_conflicts: bool,
        /// The mesh-agent image gateways run.
        #[arg(long, default_value = mesh_kube::inject::DEFAULT_IMAGE)]
        image: String,
        #[command(flatten)]
        injector: InjectorArgs,
        #[command(flatten)]
        issuer: IssuerArgs,
    },
    /// Check the mesh in a cluster: objects, identities, the injector and injected pods,
    /// against what `meshc manifests` makes of PATH (exit 1 when anything is wrong).
    Doctor {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The mesh CA directory: certificates must chain to it.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The kubeconfig context (default: the current one).
        #[arg(long)]
        context: Option<String>,
        /// How to report: ✔/✘ lines for people, or one JSON document.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
        format: ExplainFormat,
        /// The mesh-agent image gateways run (as given to `meshc apply`).
        #[arg(long, default_value = mesh_kube::inject::DEFAULT_IMAGE)]
        image: String,
        #[command(flatten)]
        injector: InjectorArgs,
        #[command(flatten)]
        issuer: IssuerArgs,
    },
    /// Draw the mesh: services and the calls its policies allow (with `--state`, the live
    /// request and success rates of a running `meshc up`), as DOT or SVG.
    Graph {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The state file of a running `meshc up --state FILE`: label edges with traffic.
        #[arg(long)]
        state: Option<PathBuf>,
        /// How long traffic is measured for with `--state`, in seconds.
        #[arg(long, default_value_t = 2.0)]
        window: f64,
        /// Where to write: FILE.dot, or FILE.svg (drawn by Graphviz's `dot`); default:
        /// DOT on stdout.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// What a running mesh is doing: per workload requests per second, success rate,
    /// latency percentiles and denials, from the agents of `meshc up --state FILE`.
    Stat {
        /// The state file of a running `meshc up --state FILE`.
        #[arg(
            long,
            required_unless_present = "kubernetes",
            conflicts_with = "kubernetes"
        )]
        state: Option<PathBuf>,
        /// The running meshed pods of a Kubernetes cluster instead, read through its API
        /// server (the kubeconfig's current context, or `--context`).
        #[arg(long)]
        kubernetes: bool,
        /// With `--kubernetes`: the kubeconfig context.
        #[arg(long, requires = "kubernetes")]
        context: Option<String>,
        /// With `--kubernetes`: only this namespace's pods (default: every namespace).
        #[arg(short, long, requires = "kubernetes")]
        namespace: Option<String>,
        /// Also per caller, service and route rule (from the callers' side).
        #[arg(long = "by", value_enum)]
        by: Option<StatBy>,
        /// Seconds of traffic each figure is computed over.
        #[arg(long, default_value_t = 2.0)]
        window: f64,
        /// Redraw every window, as `watch` does, until Ctrl-C.
        #[arg(short, long)]
        watch: bool,
        /// How to report: a table for people, or one JSON document.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
        format: ExplainFormat,
    },
    /// Watch the requests passing a workload's agents as they happen (from `meshc up`).
    Tap {
        /// The workload: `name` or `namespace/name`, with `.subset` for one subset's
        /// agents, or `gateway/NAME`.
        workload: String,
        /// The state file of a running `meshc up --state FILE`.
        #[arg(long, required = true)]
        state: PathBuf,
        /// Only requests for this service (`name` or `namespace/name`).
        #[arg(long)]
        to: Option<String>,
        /// Only requests whose path starts with this.
        #[arg(long)]
        path: Option<String>,
        /// Only requests with this method.
        #[arg(long)]
        method: Option<String>,
        /// Only requests in this direction.
        #[arg(long, value_enum)]
        direction: Option<TapDirection>,
        /// Stop after this many requests.
        #[arg(short = 'n', long)]
        max: Option<u64>,
        /// How to report: a line per request for people, or one JSON object per line.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
        format: ExplainFormat,
    },
    /// Add the mesh-agent sidecar to Kubernetes workload manifests (YAML on stdout).
    Inject {
        /// A YAML file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
        /// The mesh: files or directories (searched recursively for *.mesh).
        #[arg(long, required = true)]
        mesh: Vec<PathBuf>,
        /// The mesh-agent image.
        #[arg(long)]
        image: String,
        /// Seconds the sidecar pauses in preStop before it drains.
        #[arg(long, default_value_t = 5)]
        pre_stop_seconds: i64,
        /// How the app's traffic reaches the agent: iptables capture set up by an init
        /// container, or `HTTP_PROXY` in the app's environment.
        #[arg(long, value_enum, default_value_t = InjectMode::Capture)]
        mode: InjectMode,
        /// Have the sidecars export sampled requests' spans to this OTLP/HTTP collector
        /// (e.g. `http://otel-collector.observability:4318`).
        #[arg(long, value_name = "URL", value_parser = otlp_endpoint)]
        otlp_endpoint: Option<String>,
    },
    /// Serve sidecar injection as a Kubernetes mutating admission webhook (HTTPS, POST
    /// /inject): pods created in namespaces labelled mesh/inject=enabled get what `meshc
    /// inject` adds.
    Webhook {
        /// The mesh: files or directories (searched recursively for *.mesh).
        #[arg(long, required = true)]
        mesh: Vec<PathBuf>,
        /// The mesh-agent image.
        #[arg(long)]
        image: String,
        /// Seconds the sidecar pauses in preStop before it drains.
        #[arg(long, default_value_t = 5)]
        pre_stop_seconds: i64,
        /// How the app's traffic reaches the agent (as `meshc inject --mode`).
        #[arg(long, value_enum, default_value_t = InjectMode::Capture)]
        mode: InjectMode,
        /// Have the sidecars export sampled requests' spans to this OTLP/HTTP collector
        /// (as `meshc inject --otlp-endpoint`).
        #[arg(long, value_name = "URL", value_parser = otlp_endpoint)]
        otlp_endpoint: Option<String>,
        /// Where to listen.
        #[arg(long, default_value = "0.0.0.0:8443")]
        listen: std::net::SocketAddr,
        /// The serving certificate chain (PEM), read again when it changes.
        #[arg(long)]
        tls_cert: PathBuf,
        /// The serving certificate's private key (PEM).
        #[arg(long)]
        tls_key: PathBuf,
    },
    /// Run the language server on stdin/stdout (the server of `mesh-lsp`, linked in).
    Lsp {
        /// Arguments as `mesh-lsp` takes them (`--stdio` is accepted, `--version` prints
        /// the server's version).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Who issues workload certificates in `meshc manifests` and `meshc apply`.
#[derive(Clone, Debug, clap::Args)]
pub struct IssuerArgs {
    /// `meshc`: identity Secrets issued now from the mesh CA, valid 90 days (renewed by
    /// running again). `cert-manager`: a cert-manager ClusterIssuer backed by the mesh CA
    /// and a Certificate per identity, valid 24 h and renewed by cert-manager.
    #[arg(long, value_enum, default_value_t = IssuerKind::Meshc)]
    pub issuer: IssuerKind,
    /// cert-manager's cluster resource namespace, where the ClusterIssuer's CA Secret goes.
    #[arg(long, default_value = mesh_kube::cert_manager::DEFAULT_NAMESPACE)]
    pub cert_manager_namespace: String,
}

/// Issuers of workload certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IssuerKind {
    /// `meshc` itself.
    Meshc,
    /// cert-manager.
    CertManager,
}

/// The sidecar injector's objects in `meshc manifests` and `meshc apply`.
#[derive(Clone, Debug, clap::Args)]
pub struct InjectorArgs {
    /// Also deploy the sidecar injector (`meshc webhook` as a mutating admission webhook,
    /// run from `--image`): pods created in namespaces labelled mesh/inject=enabled get the
    /// sidecar. Needs the mesh CA, which signs its serving certificate.
    #[arg(long)]
    pub injector: bool,
    /// The namespace the injector runs in (created, never pruned).
    #[arg(long, default_value = mesh_kube::injector::DEFAULT_NAMESPACE)]
    pub injector_namespace: String,
    /// How the injector meshes pods (as `meshc inject --mode`).
    #[arg(long = "injector-mode", value_enum, default_value_t = InjectMode::Capture)]
    pub mode: InjectMode,
}

/// Modes of `meshc inject`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InjectMode {
    /// Transparent capture: the `mesh-init` init container redirects the pod's TCP.
    Capture,
    /// `HTTP_PROXY` in the app containers' environment; nothing is redirected.
    ProxyEnv,
}

impl From<InjectMode> for mesh_kube::inject::Mode {
    fn from(mode: InjectMode) -> Self {
        match mode {
            InjectMode::Capture => mesh_kube::inject::Mode::Capture,
            InjectMode::ProxyEnv => mesh_kube::inject::Mode::ProxyEnv,
        }
    }
}

/// Dry-run modes of `meshc apply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRunArg {
    /// Compare with the live objects; send no change.
    Client,
    /// Send the changes with dryRun=All: the server checks them and persists nothing.
    Server,
}

/// `meshc identity` subcommands.
#[derive(Subcommand)]
pub enum IdentityCommand {
    /// Create a mesh CA in DIR: ca.pem and ca-key.pem (mode 0600).
    Init {
        /// Directory to create the CA in.
        dir: PathBuf,
        /// The CA certificate's common name.
        #[arg(long, default_value = "mesh CA")]
        name: String,
        /// Replace a CA already in DIR (orphans every certificate it issued).
        #[arg(long)]
        force: bool,
    },
    /// Issue a workload certificate for spiffe://TD/ns/NS/sa/SA into DIR: cert.pem,
    /// key.pem (mode 0600) and ca.pem.
    Issue {
        /// The CA directory (from `meshc identity init`).
        #[arg(long)]
        ca: PathBuf,
        /// The trust domain, e.g. cluster.local.
        #[arg(long)]
        trust_domain: String,
        /// The workload's namespace.
        #[arg(long)]
        namespace: String,
        /// The workload's service account.
        #[arg(long)]
        service_account: String,
        /// How long the certificate is valid: 90m, 24h, 30d.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
    },
}

/// Output formats of `meshc check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// miette's graphical report, colour on a terminal.
    Human,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0 for code scanning.
    Sarif,
    /// GitHub Actions workflow commands.
    Github,
}

/// The extra breakdowns of `meshc stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatBy {
    /// Per caller, called service and route rule.
    Rule,
}

/// The changes `meshc diff --deny` fails on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffDeny {
    /// A request some caller may make that it could not before.
    Widen,
}

/// Which requests `meshc tap` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TapDirection {
    /// Requests from other workloads to this one.
    Inbound,
    /// Requests from this workload's app to others.
    Outbound,
    /// Requests entering the mesh through a gateway.
    Gateway,
}

impl TapDirection {
    /// The direction as the agent names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TapDirection::Inbound => "inbound",
            TapDirection::Outbound => "outbound",
            TapDirection::Gateway => "gateway",
        }
    }
}

/// Output formats of `meshc explain`, `meshc doctor`, `meshc stat`, `meshc tap` and `meshc diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainFormat {
    /// Text for people.
    Human,
    /// One JSON document.
    Json,
}

/// An OTLP/HTTP collector's base URL as `mesh-agent --otlp-endpoint` takes it
/// (`http://HOST:PORT[/PREFIX]`), refused here rather than by every agent it is given to.
fn otlp_endpoint(text: &str) -> Result<String, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|_| format!("`{text}` is not a URL (expected e.g. http://127.0.0.1:4318)"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(text.to_string()),
        (Some(_), Some(_)) => Err(format!(
            "`{text}`: only http:// OTLP endpoints are supported"
        )),
        _ => Err(format!(
            "`{text}` is not a URL (expected e.g. http://127.0.0.1:4318)"
        )),
    }
}
