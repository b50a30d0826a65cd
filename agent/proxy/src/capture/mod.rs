//! `mesh-agent capture`: installs, in the current network namespace, the `nat` rules a
//! transparent sidecar needs (what istio-init and linkerd proxy-init do), so the app's
//! outbound TCP lands on the agent's outbound listener (`--outbound`) and other workloads'
//! inbound TCP on its inbound listener (`--inbound`), without the app knowing. This module
//! holds the command line and the orchestration; `rules` is the pure rule plan and
//! `iptables` runs the binary.

pub mod iptables;
pub mod rules;

use clap::Parser;

use self::iptables::{Iptables, IptablesError, on_path};
use self::rules::{Cidr, Family, InboundPorts, Settings};

/// The agent's admin port and its peer (inbound) port: never captured inbound.
pub const DEFAULT_EXCLUDED_INBOUND_PORTS: [u16; 2] = [15000, 15006];

/// Which `iptables` binaries to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// `iptables` / `ip6tables` as found on PATH (whatever the system's alternative is).
    Auto,
    /// `iptables-nft` / `ip6tables-nft`.
    Nft,
    /// `iptables-legacy` / `ip6tables-legacy`.
    Legacy,
}

impl Backend {
    fn base(self) -> &'static str {
        match self {
            Backend::Auto => "iptables",
            Backend::Nft => "iptables-nft",
            Backend::Legacy => "iptables-legacy",
        }
    }
}

/// `mesh-agent capture`: redirect the pod's TCP to the agent with iptables `nat` rules.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "mesh-agent capture",
    about = "Install (or --remove) the iptables nat rules that redirect this network namespace's TCP to the agent's capture listeners",
    long_about = None
)]
pub struct CaptureArgs {
    /// Port captured outbound TCP is redirected to (the agent's `--outbound` listener).
    #[arg(long, default_value_t = 15001, value_name = "PORT", value_parser = port())]
    pub outbound_port: u16,
    /// Port captured inbound TCP is redirected to (the agent's `--inbound` listener); never
    /// captured itself.
    #[arg(long, default_value_t = 15006, value_name = "PORT", value_parser = port())]
    pub inbound_port: u16,
    /// The proxy's uid: its connections are never captured (`-m owner --uid-owner`).
    /// Required unless --proxy-gid is given.
    #[arg(long, value_name = "UID", required_unless_present_any = ["proxy_gid", "remove"])]
    pub proxy_uid: Option<u32>,
    /// The proxy's gid: its connections are never captured (`-m owner --gid-owner`).
    #[arg(long, value_name = "GID")]
    pub proxy_gid: Option<u32>,
    /// Inbound ports never captured, comma separated, in addition to 15000,15006 and
    /// --inbound-port.
    #[arg(long, value_name = "PORTS", value_delimiter = ',', value_parser = port())]
    pub exclude_inbound_ports: Vec<u16>,
    /// Inbound ports captured, comma separated, or `*` for all; an empty list captures
    /// no inbound traffic.
    #[arg(long, value_name = "PORTS|*", default_value = "*", value_parser = parse_inbound_ports)]
    pub include_inbound_ports: InboundPorts,
    /// Outbound destination ports never captured, comma separated.
    #[arg(long, value_name = "PORTS", value_delimiter = ',', value_parser = port())]
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations never captured: IPv4 and IPv6 CIDRs, comma separated.
    #[arg(long, value_name = "CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub exclude_outbound_cidrs: Vec<Cidr>,
    /// Also program IPv6 (ip6tables). Off by default: the agent's capture listeners are
    /// IPv4 (`127.0.0.1:15001`, `0.0.0.0:15006`), and IPv6 redirected to `[::1]` would
    /// find nothing listening. `--remove` removes IPv6 rules too when ip6tables exists.
    #[arg(long, overrides_with = "no_ipv6")]
    pub ipv6: bool,
    /// Program IPv4 only.
    #[arg(long, overrides_with = "ipv6")]
    pub no_ipv6: bool,
    /// Which iptables binaries to run.
    #[arg(long, value_enum, default_value_t = Backend::Auto, value_name = "BACKEND")]
    pub iptables_backend: Backend,
    /// Print the commands it would run, one per line (for a namespace without our
    /// chains), and change nothing. Needs no privilege.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove the jumps and chains it installs (idempotent).
    #[arg(long)]
    pub remove: bool,
}

fn port() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(1..=65535)
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    text.parse()
}

fn parse_inbound_ports(text: &str) -> Result<InboundPorts, String> {
    let text = text.trim();
    if text == "*" {
        return Ok(InboundPorts::All);
    }
    let mut ports = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u16>() {
            Ok(port) if port != 0 => ports.push(port),
            _ => return Err(format!("`{item}` is not a port (1..=65535) or `*`")),
        }
    }
    Ok(InboundPorts::Only(ports))
}

/// Why `mesh-agent capture` failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// An iptables command failed.
    #[error(transparent)]
    Iptables(#[from] IptablesError),
    /// `--ipv6` was asked for but there is no ip6tables.
    #[error(
        "--ipv6: `{0}` not found on PATH: install it (Debian/Ubuntu package `iptables`) or pass --no-ipv6"
    )]
    NoIp6tables(String),
}

impl CaptureArgs {
    /// The validated settings of the rule plan.
    pub fn settings(&self) -> Settings {
        let mut exclude_inbound_ports: Vec<u16> = DEFAULT_EXCLUDED_INBOUND_PORTS
            .into_iter()
            .chain(self.exclude_inbound_ports.iter().copied())
            .chain([self.inbound_port])
            .collect();
        exclude_inbound_ports.sort_unstable();
        exclude_inbound_ports.dedup();
        let mut exclude_outbound_ports = self.exclude_outbound_ports.clone();
        exclude_outbound_ports.sort_unstable();
        exclude_outbound_ports.dedup();
        let mut exclude_outbound_cidrs = Vec::new();
        for cidr in &self.exclude_outbound_cidrs {
            if !exclude_outbound_cidrs.contains(cidr) {
                exclude_outbound_cidrs.push(*cidr);
            }
        }
        Settings {
            outbound_port: self.outbound_port,
            inbound_port: self.inbound_port,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            exclude_inbound_ports,
            include_inbound_ports: self.include_inbound_ports.clone(),
            exclude_outbound_ports,
            exclude_outbound_cidrs,
        }
    }

    /// The families to program, with their binaries.
    fn targets(&self) -> Result<Vec<(Family, Iptables)>, CaptureError> {
        let base = self.iptables_backend.base();
        let v6 = Iptables::new(base, Family::V6);
        let with_v6 = if self.ipv6 {
            if !self.dry_run && !on_path(&v6.binary) {
                return Err(CaptureError::NoIp6tables(v6.binary));
            }
            true
        } else {
            self.remove && !self.no_ipv6 && on_path(&v6.binary)
        };
        let mut targets = vec![(Family::V4, Iptables::new(base, Family::V4))];
        if with_v6 {
            targets.push((Family::V6, v6));
        }
        Ok(targets)
    }
}

/// Runs `mesh-agent capture`: returns the lines to print on stdout (the commands, for
/// `--dry-run`; the commands that changed something otherwise).
pub fn run(args: &CaptureArgs) -> Result<Vec<String>, CaptureError> {
    let settings = args.settings();
    let mut lines = Vec::new();
    for (family, iptables) in args.targets()? {
        let plan = rules::plan(&settings, family);
        lines.extend(match (args.dry_run, args.remove) {
            (true, false) => iptables.install_commands(&plan),
            (true, true) => iptables.remove_commands(),
            (false, false) => iptables.install(&plan)?,
            (false, true) => iptables.remove()?,
        });
    }
    Ok(lines)
}
