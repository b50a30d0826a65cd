//! The rule plan of `mesh-agent capture`, as pure data: which chains exist and which rules
//! they hold for one address family, given the settings. Kept apart from running
//! `iptables` so the exact rules can be unit tested, printed by `--dry-run`, and compared
//! with what `iptables -t nat -S` reads back (every rule is written in the canonical form
//! `-S` prints, e.g. `-p tcp -m tcp --dport 80`, `! -d 127.0.0.0/8 -o lo`).

use std::fmt;
use std::net::IpAddr;

/// The `nat` table: all our rules live there.
pub const TABLE: &str = "nat";
/// Inbound: hooked from `PREROUTING`; picks the TCP ports to capture.
pub const MESH_INBOUND: &str = "MESH_INBOUND";
/// Inbound: `REDIRECT` to the inbound capture port.
pub const MESH_IN_REDIRECT: &str = "MESH_IN_REDIRECT";
/// Outbound: hooked from `OUTPUT`; skips the proxy, loopback and exclusions.
pub const MESH_OUTPUT: &str = "MESH_OUTPUT";
/// Outbound: `REDIRECT` to the outbound capture port.
pub const MESH_REDIRECT: &str = "MESH_REDIRECT";
/// Our chains, in creation order (and the order they are flushed and deleted).
pub const CHAINS: [&str; 4] = [MESH_INBOUND, MESH_IN_REDIRECT, MESH_OUTPUT, MESH_REDIRECT];

/// An address family: `iptables` (IPv4) or `ip6tables` (IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4, programmed with `iptables`.
    V4,
    /// IPv6, programmed with `ip6tables`.
    V6,
}

impl Family {
    /// The loopback network: connections to it over `lo` are never captured.
    pub fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }
}

/// A validated CIDR, kept in the normalized form `iptables -S` prints (host bits cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits cleared.
    pub network: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// The family the CIDR belongs to.
    pub fn family(&self) -> Family {
        match self.network {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// Parses `ADDR/PREFIX` (IPv4 or IPv6); a bare address is a host (`/32`, `/128`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not a CIDR: `{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| {
                    format!("`{text}` is not a CIDR: the prefix length must be 0..={max}")
                })?,
        };
        let network = match addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Which inbound TCP ports are captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundPorts {
    /// Every port (`*`) except the excluded ones.
    All,
    /// Only these ports (still minus the excluded ones); empty captures no inbound traffic.
    Only(Vec<u16>),
}

/// What to capture, validated: the input of [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Where captured outbound TCP is redirected.
    pub outbound_port: u16,
    /// Where captured inbound TCP is redirected.
    pub inbound_port: u16,
    /// The proxy's uid: its traffic is never captured.
    pub proxy_uid: Option<u32>,
    /// The proxy's gid: its traffic is never captured.
    pub proxy_gid: Option<u32>,
    /// Inbound ports never captured (sorted, deduplicated, always holding `inbound_port`).
    pub exclude_inbound_ports: Vec<u16>,
    /// Inbound ports captured.
    pub include_inbound_ports: InboundPorts,
    /// Outbound destination ports never captured (sorted, deduplicated).
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations never captured, both families (each plan takes its own).
    pub exclude_outbound_cidrs: Vec<Cidr>,
}

/// One rule: the chain it is appended to and its specification, in `iptables -S` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The chain.
    pub chain: &'static str,
    /// The specification after `-A CHAIN`.
    pub spec: Vec<String>,
}

impl Rule {
    fn new(chain: &'static str, spec: &[&str]) -> Self {
        Rule {
            chain,
            spec: spec.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The rule as `iptables -t nat -S` prints it: `-A CHAIN SPEC`.
    pub fn to_line(&self) -> String {
        format!("-A {} {}", self.chain, self.spec.join(" "))
    }
}

/// The rules of one family: the contents of our chains and the jumps into them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The family.
    pub family: Family,
    /// The rules of our chains, in order.
    pub rules: Vec<Rule>,
    /// The jumps from the built-in chains (`PREROUTING`, `OUTPUT`) into ours.
    pub jumps: Vec<Rule>,
}

/// The jumps from the built-in chains into ours (the same for every setting; `--remove`
/// deletes exactly these).
pub fn jumps() -> Vec<Rule> {
    vec![
        Rule::new("PREROUTING", &["-p", "tcp", "-j", MESH_INBOUND]),
        Rule::new("OUTPUT", &["-p", "tcp", "-j", MESH_OUTPUT]),
    ]
}

/// The rules for `family` (the shape of istio-init's `nat` rules, see the README).
pub fn plan(settings: &Settings, family: Family) -> Plan {
    let mut rules = Vec::new();
    let port_rule = |chain: &'static str, port: u16, target: &str| {
        Rule::new(
            chain,
            &[
                "-p",
                "tcp",
                "-m",
                "tcp",
                "--dport",
                &port.to_string(),
                "-j",
                target,
            ],
        )
    };

    // Inbound: excluded ports return; the included ones (all by default) are redirected.
    match &settings.include_inbound_ports {
        InboundPorts::All => {
            for port in &settings.exclude_inbound_ports {
                rules.push(port_rule(MESH_INBOUND, *port, "RETURN"));
            }
            rules.push(Rule::new(
                MESH_INBOUND,
                &["-p", "tcp", "-j", MESH_IN_REDIRECT],
            ));
        }
        InboundPorts::Only(ports) => {
            for port in ports {
                if !settings.exclude_inbound_ports.contains(port) {
                    rules.push(port_rule(MESH_INBOUND, *port, MESH_IN_REDIRECT));
                }
            }
        }
    }
    let inbound_port = settings.inbound_port.to_string();
    rules.push(Rule::new(
        MESH_IN_REDIRECT,
        &["-p", "tcp", "-j", "REDIRECT", "--to-ports", &inbound_port],
    ));

    // Outbound. Port exclusions first, so they also hold for connections back to self.
    for port in &settings.exclude_outbound_ports {
        rules.push(port_rule(MESH_OUTPUT, *port, "RETURN"));
    }
    // The app's connections over `lo` to a local non-loopback address (its own pod IP)
    // go through the inbound side; loopback-to-loopback and the proxy's own `lo`
    // traffic are left alone.
    let uid = settings.proxy_uid.map(|uid| uid.to_string());
    let gid = settings.proxy_gid.map(|gid| gid.to_string());
    let mut not_proxy = vec!["-m", "owner"];
    if let Some(uid) = &uid {
        not_proxy.extend(["!", "--uid-owner", uid]);
    }
    if let Some(gid) = &gid {
        not_proxy.extend(["!", "--gid-owner", gid]);
    }
    let mut to_self = vec!["!", "-d", family.loopback(), "-o", "lo"];
    if uid.is_some() || gid.is_some() {
        to_self.extend(&not_proxy);
    }
    to_self.extend(["-j", MESH_IN_REDIRECT]);
    rules.push(Rule::new(MESH_OUTPUT, &to_self));
    rules.push(Rule::new(MESH_OUTPUT, &["-o", "lo", "-j", "RETURN"]));
    // The proxy's own connections: never captured (no loops).
    if let Some(uid) = &uid {
        rules.push(Rule::new(
            MESH_OUTPUT,
            &["-m", "owner", "--uid-owner", uid, "-j", "RETURN"],
        ));
    }
    if let Some(gid) = &gid {
        rules.push(Rule::new(
            MESH_OUTPUT,
            &["-m", "owner", "--gid-owner", gid, "-j", "RETURN"],
        ));
    }
    for cidr in &settings.exclude_outbound_cidrs {
        if cidr.family() == family {
            rules.push(Rule::new(
                MESH_OUTPUT,
                &["-d", &cidr.to_string(), "-j", "RETURN"],
            ));
        }
    }
    rules.push(Rule::new(MESH_OUTPUT, &["-j", MESH_REDIRECT]));
    let outbound_port = settings.outbound_port.to_string();
    rules.push(Rule::new(
        MESH_REDIRECT,
        &["-p", "tcp", "-j", "REDIRECT", "--to-ports", &outbound_port],
    ));

    Plan {
        family,
        rules,
        jumps: jumps(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            outbound_port: 15001,
            inbound_port: 15006,
            proxy_uid: Some(1337),
            proxy_gid: None,
            exclude_inbound_ports: vec![15000, 15006, 15020],
            include_inbound_ports: InboundPorts::All,
            exclude_outbound_ports: vec![443],
            exclude_outbound_cidrs: vec![
                "10.1.2.3/8".parse().unwrap(),
                "fd00::1/64".parse().unwrap(),
            ],
        }
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.rules
            .iter()
            .chain(&plan.jumps)
            .map(Rule::to_line)
            .collect()
    }

    #[test]
    fn ipv4_plan() {
        assert_eq!(
            lines(&plan(&settings(), Family::V4)),
            [
                "-A MESH_INBOUND -p tcp -m tcp --dport 15000 -j RETURN",
                "-A MESH_INBOUND -p tcp -m tcp --dport 15006 -j RETURN",
                "-A MESH_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
                "-A MESH_INBOUND -p tcp -j MESH_IN_REDIRECT",
                "-A MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
                "-A MESH_OUTPUT -p tcp -m tcp --dport 443 -j RETURN",
                "-A MESH_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner ! --uid-owner 1337 -j MESH_IN_REDIRECT",
                "-A MESH_OUTPUT -o lo -j RETURN",
                "-A MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN",
                "-A MESH_OUTPUT -d 10.0.0.0/8 -j RETURN",
                "-A MESH_OUTPUT -j MESH_REDIRECT",
                "-A MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
                "-A PREROUTING -p tcp -j MESH_INBOUND",
                "-A OUTPUT -p tcp -j MESH_OUTPUT",
            ]
        );
    }

    #[test]
    fn ipv6_plan_takes_ipv6_cidrs_and_both_owners() {
        let mut settings = settings();
        settings.proxy_gid = Some(1338);
        let lines = lines(&plan(&settings, Family::V6));
        assert!(lines.contains(&"-A MESH_OUTPUT -d fd00::/64 -j RETURN".to_owned()));
        assert!(!lines.iter().any(|l| l.contains("10.0.0.0/8")));
        assert!(lines.contains(
            &"-A MESH_OUTPUT ! -d ::1/128 -o lo -m owner ! --uid-owner 1337 ! --gid-owner 1338 -j MESH_IN_REDIRECT"
                .to_owned()
        ));
        assert!(lines.contains(&"-A MESH_OUTPUT -m owner --gid-owner 1338 -j RETURN".to_owned()));
    }

    #[test]
    fn included_ports_minus_excluded() {
        let mut settings = settings();
        settings.include_inbound_ports = InboundPorts::Only(vec![8080, 15006, 9090]);
        let plan = plan(&settings, Family::V4);
        let inbound: Vec<String> = plan
            .rules
            .iter()
            .filter(|r| r.chain == MESH_INBOUND)
            .map(Rule::to_line)
            .collect();
        assert_eq!(
            inbound,
            [
                "-A MESH_INBOUND -p tcp -m tcp --dport 8080 -j MESH_IN_REDIRECT",
                "-A MESH_INBOUND -p tcp -m tcp --dport 9090 -j MESH_IN_REDIRECT",
            ]
        );
    }

    #[test]
    fn cidrs_are_validated_and_normalized() {
        let parse = |s: &str| s.parse::<Cidr>().map(|c| c.to_string());
        assert_eq!(parse("192.168.1.7/24"), Ok("192.168.1.0/24".to_owned()));
        assert_eq!(parse("10.0.0.1"), Ok("10.0.0.1/32".to_owned()));
        assert_eq!(parse("0.0.0.0/0"), Ok("0.0.0.0/0".to_owned()));
        assert_eq!(parse("2001:db8::5/32"), Ok("2001:db8::/32".to_owned()));
        assert!(parse("10.0.0.0/33").is_err());
        assert!(parse("10.0.0/8").is_err());
        assert!(parse("fd00::/129").is_err());
        assert!(parse("nope").is_err());
    }
}
