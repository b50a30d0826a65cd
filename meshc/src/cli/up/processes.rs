//! The child processes of a local mesh: one `mesh-agent` and one `mesh-demo` app per
//! workload, and one `mesh-agent --gateway` per ingress gateway. Each runs under a supervisor task that restarts it when it dies unexpectedly
//! (and reports that), and kills it when the mesh stops. Children get their own process
//! group, so a Ctrl-C at the terminal reaches `meshc up` alone, which then stops them; and
//! they are started through `setpriv --pdeathsig KILL`, so the kernel kills them when
//! `meshc up` dies without the chance to (SIGKILL, a crash): no process outlives it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::plan::{Gateway, Workload};
use super::setup::Layout;

/// Restarts allowed within [`RESTART_WINDOW`] before a process is given up on.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The two programs `meshc up` starts.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `mesh-agent`.
    pub agent: PathBuf,
    /// `mesh-demo`.
    pub demo: PathBuf,
    /// util-linux's `setpriv`, which ties a child's life to `meshc up`'s (none: children
    /// are still stopped by `meshc up`, but would outlive a SIGKILL of it).
    pub setpriv: Option<PathBuf>,
}

impl Binaries {
    /// Finds `mesh-agent` and `mesh-demo` next to this `meshc`, else on `PATH`, and
    /// `setpriv` on `PATH`.
    pub fn find() -> Result<Binaries, String> {
        Ok(Binaries {
            agent: find("mesh-agent")?,
            demo: find("mesh-demo")?,
            setpriv: find("setpriv").ok(),
        })
    }

    /// A command running `program` that the kernel kills with SIGKILL when the thread of
    /// `meshc up` that started it ends (`PR_SET_PDEATHSIG`, set by `setpriv` before it
    /// execs `program`; the workspace forbids the `unsafe` a `pre_exec` hook would take).
    /// Children are started from the runtime's worker threads, which live as long as
    /// `meshc up` does.
    pub fn tied(&self, program: &Path) -> Command {
        match &self.setpriv {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(PDEATHSIG).arg("--").arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

/// The `setpriv` arguments that make a child die with its parent.
pub const PDEATHSIG: [&str; 2] = ["--pdeathsig", "KILL"];

fn find(name: &str) -> Result<PathBuf, String> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)));
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "cannot find `{name}` next to meshc or on PATH; build every binary with \
                 `cargo build --release --bins`"
            )
        })
}

/// One supervised child.
pub struct Supervised {
    task: JoinHandle<()>,
    pid: watch::Receiver<Option<u32>>,
}

impl Supervised {
    /// The current process id (none while restarting or after giving up).
    pub fn pid(&self) -> Option<u32> {
        *self.pid.borrow()
    }

    /// Waits until the supervisor has killed its child and stopped.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// How a workload's two processes are started.
pub fn agent_command(binaries: &Binaries, layout: &Layout, workload: &Workload) -> Command {
    use std::net::{Ipv4Addr, SocketAddr};
    let (mut command, inbound, admin, app) = match &workload.pod {
        // In its own namespace: peers and the prober reach the agent on any address;
        // the app is on loopback at its service's port.
        Some(pod) => (
            super::isolated::command_in(pod, true, &binaries.agent),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, workload.ports.inbound.port())),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, workload.ports.admin.port())),
            SocketAddr::from((Ipv4Addr::LOCALHOST, workload.app_port)),
        ),
        None => (
            binaries.tied(&binaries.agent),
            workload.ports.inbound,
            workload.ports.admin,
            workload.ports.app,
        ),
    };
    command
        .arg("--config")
        .arg(layout.config(workload))
        .arg("--endpoints")
        .arg(layout.endpoints())
        .arg("--identity-dir")
        .arg(layout.identity(workload))
        .arg("--outbound")
        .arg(workload.ports.outbound.to_string())
        .arg("--inbound")
        .arg(inbound.to_string())
        .arg("--admin")
        .arg(admin.to_string())
        .arg("--app")
        .arg(app.to_string())
        .arg("--resync")
        .arg("1s");
    command
}

/// The agent of an ingress gateway: its listeners on the loopback addresses of the plan,
/// calling the mesh's agents as the gateway's identity.
pub fn gateway_command(binaries: &Binaries, layout: &Layout, gateway: &Gateway) -> Command {
    let mut command = binaries.tied(&binaries.agent);
    command
        .arg("--config")
        .arg(layout.gateway_config(gateway))
        .arg("--gateway")
        .arg(&gateway.name)
        .arg("--endpoints")
        .arg(layout.endpoints())
        .arg("--identity-dir")
        .arg(layout.identity_of(&gateway.identity))
        .arg("--admin")
        .arg(gateway.admin.to_string())
        .arg("--resync")
        .arg("1s");
    for (port, _, address) in &gateway.listeners {
        command
            .arg("--gateway-port")
            .arg(format!("{port}={address}"));
    }
    command
}

/// The demo app of a workload.
pub fn app_command(binaries: &Binaries, workload: &Workload) -> Command {
    let mut command = match &workload.pod {
        // Under capture the app has no proxy settings: its calls go to plain addresses.
        Some(pod) => {
            let mut command = super::isolated::command_in(pod, false, &binaries.demo);
            command
                .arg("--service")
                .arg(&workload.service)
                .arg("--listen")
                .arg(
                    std::net::SocketAddr::from((
                        std::net::Ipv4Addr::UNSPECIFIED,
                        workload.app_port,
                    ))
                    .to_string(),
                );
            command
        }
        None => {
            let mut command = binaries.tied(&binaries.demo);
            command
                .arg("--service")
                .arg(&workload.service)
                .arg("--listen")
                .arg(workload.ports.app.to_string())
                .arg("--sidecar")
                .arg(workload.ports.outbound.to_string());
            command
        }
    };
    if let Some(subset) = &workload.subset {
        command.arg("--subset").arg(subset);
    }
    command
}

/// Starts `command` under a supervisor: output appended to `log`, restarted when it exits
/// before `stop` turns true, killed when it does.
pub fn supervise(
    name: String,
    mut command: Command,
    log: &Path,
    stop: watch::Receiver<bool>,
) -> Result<Supervised, String> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))
    };
    let (out, err) = (open()?, open()?);
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    let first = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let (pid_tx, pid_rx) = watch::channel(first.id());
    let task = tokio::spawn(run(name, command, first, log.to_path_buf(), stop, pid_tx));
    Ok(Supervised { task, pid: pid_rx })
}

async fn run(
    name: String,
    mut command: Command,
    mut child: tokio::process::Child,
    log: PathBuf,
    mut stop: watch::Receiver<bool>,
    pid: watch::Sender<Option<u32>>,
) {
    let mut restarts: Vec<Instant> = Vec::new();
    loop {
        let status = tokio::select! {
            status = child.wait() => status,
            () = stopped(&mut stop) => {
                let _ = child.kill().await;
                let _ = pid.send(None);
                return;
            }
        };
        let _ = pid.send(None);
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        restarts.retain(|at| at.elapsed() < RESTART_WINDOW);
        if restarts.len() >= MAX_RESTARTS {
            eprintln!(
                "error: {name} exited ({status}) {MAX_RESTARTS} times within a minute; giving \
                 up on it. Its log: {}",
                log.display()
            );
            return;
        }
        eprintln!(
            "warning: {name} exited unexpectedly ({status}); restarting it. Its log: {}",
            log.display()
        );
        restarts.push(Instant::now());
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stopped(&mut stop) => return,
        }
        match command.spawn() {
            Ok(next) => {
                let _ = pid.send(next.id());
                child = next;
            }
            Err(e) => {
                eprintln!("error: cannot restart {name}: {e}");
                return;
            }
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
