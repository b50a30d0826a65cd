//! `meshc up --isolated`: every workload in its own network namespace with its own IP
//! and transparent capture, so apps call services by plain address with no proxy
//! settings, as pods do in a cluster. Everything lives under one outer namespace that
//! `meshc up` creates and removes: a bridge there joins one veth pair per workload
//! namespace; nothing is linked to the machine's own interfaces.
//!
//! Addresses come from 198.18.0.0/15, the range reserved for network test labs
//! (RFC 2544): workloads at 198.18.0.2 and up, one virtual address per service at
//! 198.18.1.1 and up (only reachable through capture, like a clusterIP without
//! kube-proxy). Agents run as uid [`PROXY_UID`], which the capture rules exempt; apps run
//! as root. Each workload namespace gets an `/etc/hosts` (through `ip netns exec`'s
//! `/etc/netns/NAME/hosts`) naming every service's address.
//!
//! Namespaces are made with the `ip` tool (iproute2), the capture rules with
//! `mesh-agent capture`; both need root.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// The uid (and gid) agents run as, exempt from capture (Istio uses the same).
pub const PROXY_UID: u32 = 1337;

/// The agent's ports inside a workload namespace.
pub const OUTBOUND_PORT: u16 = 15001;
/// Peer agents' mTLS and captured inbound connections.
pub const INBOUND_PORT: u16 = 15006;
/// `/ready`, `/metrics`.
pub const ADMIN_PORT: u16 = 15000;

/// Where `ip netns` keeps named namespaces (usable with `nsenter --net=`).
const NETNS_DIR: &str = "/run/netns";

/// The `i`-th workload's address.
pub fn workload_ip(i: usize) -> Ipv4Addr {
    let [a, b] = u16::try_from(i + 2).unwrap_or(u16::MAX).to_be_bytes();
    Ipv4Addr::new(198, 18, a, b)
}

/// The `i`-th service's virtual address.
pub fn service_ip(i: usize) -> Ipv4Addr {
    let [a, b] = u16::try_from(i + 1).unwrap_or(u16::MAX).to_be_bytes();
    Ipv4Addr::new(198, 19, a, b)
}

/// The path of the named namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Refuses to go on without root: namespaces and iptables need it.
pub fn require_root() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse::<u32>().ok());
    match euid {
        Some(0) => Ok(()),
        _ => Err(
            "`meshc up --isolated` needs root: it creates network namespaces and \
                  installs iptables capture rules (CAP_SYS_ADMIN, CAP_NET_ADMIN); run it \
                  with sudo, or without --isolated to run the mesh on loopback"
                .into(),
        ),
    }
}

/// A workload's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// The namespace's name (`ip netns` name).
    pub netns: String,
    /// Its address on the bridge.
    pub ip: Ipv4Addr,
}

/// The namespaces of one `meshc up --isolated`; removed when dropped.
pub struct Network {
    outer: String,
    pods: Vec<String>,
    hosts: Vec<PathBuf>,
}

impl Network {
    /// Creates the outer namespace with its bridge, and `pods` joined to it, each with
    /// loopback up, its address, and `hosts` as its `/etc/hosts`.
    pub async fn create(prefix: &str, pods: &[Pod], hosts: &str) -> Result<Network, String> {
        let outer = format!("{prefix}-outer");
        let mut network = Network {
            outer: outer.clone(),
            pods: Vec::new(),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &outer]).await?;
        ip(&["-n", &outer, "link", "add", "br0", "type", "bridge"]).await?;
        ip(&["-n", &outer, "link", "set", "br0", "up"]).await?;
        ip(&["-n", &outer, "link", "set", "lo", "up"]).await?;
        for (i, pod) in pods.iter().enumerate() {
            ip(&["netns", "add", &pod.netns]).await?;
            network.pods.push(pod.netns.clone());
            let host_end = format!("v{i}");
            ip(&[
                "-n", &outer, "link", "add", &host_end, "type", "veth", "peer", "name", "eth0",
                "netns", &pod.netns,
            ])
            .await?;
            ip(&[
                "-n", &outer, "link", "set", &host_end, "master", "br0", "up",
            ])
            .await?;
            ip(&["-n", &pod.netns, "link", "set", "lo", "up"]).await?;
            // A /15 on the link: workload addresses and service addresses are on-link,
            // so connecting to a service address reaches the capture rules.
            ip(&[
                "-n",
                &pod.netns,
                "addr",
                "add",
                &format!("{}/15", pod.ip),
                "dev",
                "eth0",
            ])
            .await?;
            ip(&["-n", &pod.netns, "link", "set", "eth0", "up"]).await?;
            let dir = Path::new("/etc/netns").join(&pod.netns);
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("hosts"), hosts))
                .map_err(|e| format!("cannot write {}: {e}", dir.join("hosts").display()))?;
            network.hosts.push(dir);
        }
        Ok(network)
    }

    /// The outer namespace's name.
    pub fn outer(&self) -> &str {
        &self.outer
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for name in self.pods.iter().chain(std::iter::once(&self.outer)) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for dir in &self.hosts {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `ip ARGS`, failing with its error output.
async fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run `ip` (iproute2, Debian package `iproute2`): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A command running `program` inside `pod`'s namespace, as [`PROXY_UID`] when
/// `as_proxy`, killed by the kernel when `meshc up` dies (`ip netns exec` and `setpriv`
/// exec, so `program` is `meshc up`'s own child; see [`super::processes::Binaries::tied`]).
pub fn command_in(pod: &Pod, as_proxy: bool, program: &Path) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &pod.netns, "setpriv"]);
    command.args(super::processes::PDEATHSIG);
    if as_proxy {
        command.args([
            &format!("--reuid={PROXY_UID}"),
            &format!("--regid={PROXY_UID}"),
            "--clear-groups",
        ]);
    }
    command.arg("--").arg(program);
    command
}

/// Installs the capture rules in `pod` with `mesh-agent capture`.
pub async fn capture(agent: &Path, pod: &Pod) -> Result<(), String> {
    let output = command_in(pod, false, agent)
        .args([
            "capture",
            "--proxy-uid",
            &PROXY_UID.to_string(),
            "--outbound-port",
            &OUTBOUND_PORT.to_string(),
            "--inbound-port",
            &INBOUND_PORT.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run mesh-agent capture: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "capture rules in {}: {}",
            pod.netns,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Gives `root` and everything below it to [`PROXY_UID`], so agents can read their
/// configs and keys (meshc, as root, still writes them).
pub fn hand_to_proxy(root: &Path) -> Result<(), String> {
    let chown = |path: &Path| {
        std::os::unix::fs::chown(path, Some(PROXY_UID), Some(PROXY_UID))
            .map_err(|e| format!("cannot hand {} to uid {PROXY_UID}: {e}", path.display()))
    };
    chown(root)?;
    let entries =
        std::fs::read_dir(root).map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", root.display()))?
            .path();
        if path.is_dir() {
            hand_to_proxy(&path)?;
        } else {
            chown(&path)?;
        }
    }
    Ok(())
}

/// Runs `probe` on a thread inside the namespace at `path` (sockets it opens live
/// there); the rest of `meshc` stays where it is.
pub fn in_namespace<T, F>(path: PathBuf, probe: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("cannot enter {}: {e}", path.display()))?;
        Ok(probe())
    });
    thread
        .join()
        .map_err(|_| "the namespace probe thread failed".to_string())?
}
