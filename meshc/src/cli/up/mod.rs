//! `meshc up PATH`: the whole mesh on one machine. Compiles the mesh (refusing to start
//! on errors), writes configs, endpoints and fresh certificates to a throwaway directory,
//! starts a demo app and a `mesh-agent` process per workload on loopback (and a gateway
//! agent per ingress gateway), waits until every agent is ready, prints where everything is, and supervises the processes until
//! Ctrl-C or SIGTERM. With `--watch`, edits recompile and the agents hot-reload; a broken
//! edit is reported and changes nothing.

mod isolated;
mod plan;
mod ports;
mod probe;
mod processes;
mod report;
mod setup;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use mesh_compiler::Checked;
use mesh_compiler::report::Style;
use tokio::sync::watch as signal_watch;

use self::plan::Plan;
use self::processes::{Binaries, Supervised};
use self::setup::Layout;
use super::{Exit, report_human};

/// How long the agents have to become ready.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// What `meshc up` was asked for.
pub struct Options {
    /// The mesh's files or directories.
    pub paths: Vec<PathBuf>,
    /// First port of the fixed range, or 0 for ports chosen by the OS.
    pub base_port: u16,
    /// Where to write the state document once ready.
    pub state: Option<PathBuf>,
    /// Recompile on edits.
    pub watch: bool,
    /// Each workload in its own network namespace with transparent capture (root only).
    pub isolated: bool,
    /// Where every agent exports sampled requests' spans (OTLP/HTTP), if anywhere.
    pub otlp_endpoint: Option<String>,
}

/// Runs `meshc up` to completion.
pub fn run(options: &Options, style: Style) -> Exit {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Trouble;
        }
    };
    runtime.block_on(up(options, style))
}

async fn up(options: &Options, style: Style) -> Exit {
    if options.isolated
        && let Err(e) = isolated::require_root()
    {
        return trouble(&e);
    }
    let Some(checked) = compile(&options.paths, style) else {
        eprintln!("error: the mesh has errors; nothing was started");
        return Exit::Findings;
    };
    let binaries = match Binaries::find() {
        Ok(binaries) => binaries,
        Err(e) => return trouble(&e),
    };
    let mut plan = match plan::plan(
        &checked,
        if options.isolated {
            0
        } else {
            options.base_port
        },
    ) {
        Ok(plan) => plan,
        Err(e) => return trouble(&e.to_string()),
    };
    // Held until the end: dropping it removes every namespace.
    let mut network = None;
    if options.isolated && !plan.gateways.is_empty() {
        eprintln!(
            "warning: --isolated does not run gateways yet ({} left out): the workloads' \
             namespaces are not reachable from a gateway outside them",
            plan.gateways.len()
        );
        plan.gateways.clear();
    }
    if options.isolated {
        let prefix = format!("meshc-{}", std::process::id());
        plan::isolate(&mut plan, &checked, &prefix);
        match isolate(&plan, &binaries, &prefix).await {
            Ok(created) => network = Some(created),
            Err(e) => return trouble(&e),
        }
    }
    let dir = match tempfile::Builder::new().prefix("meshc-up-").tempdir() {
        Ok(dir) => dir,
        Err(e) => return trouble(&format!("cannot create a temporary directory: {e}")),
    };
    let layout = Layout {
        root: dir.path().to_path_buf(),
    };
    let configs = mesh_compiler::emit::files(&checked.mesh, &checked.cedar);
    if let Err(e) = setup::write_all(&layout, &plan, &configs) {
        return trouble(&e);
    }
    if options.isolated
        && let Err(e) = isolated::hand_to_proxy(&layout.root)
    {
        return trouble(&e);
    }
    // Watch before starting, so an edit made while the agents boot is not missed.
    let mut changes = if options.watch {
        match watch::Changes::watch(&options.paths) {
            Ok(changes) => Some(changes),
            Err(e) => return trouble(&e),
        }
    } else {
        None
    };

    let (quit_tx, quit) = signal_watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = quit_tx.send(true);
    });
    let (stop_tx, stop_rx) = signal_watch::channel(false);
    let children = match start(&plan, &binaries, &layout, options, &stop_rx) {
        Ok(children) => children,
        Err(e) => {
            let _ = stop_tx.send(true);
            return trouble(&e);
        }
    };
    let ready = async {
        if options.isolated {
            probe::wait_ready_isolated(&plan.workloads, READY_LIMIT).await?;
        } else {
            probe::wait_ready(&plan.workloads, READY_LIMIT).await?;
        }
        probe::wait_gateways_ready(&plan.gateways, READY_LIMIT).await
    };
    let exit = tokio::select! {
        ready = ready => match ready {
            Ok(()) => serve(options, &plan, &layout, &children, changes.as_mut(), quit.clone(), style).await,
            Err(why) => {
                eprintln!("error: the mesh did not become ready within {}s:\n  {why}\n(logs in {})",
                    READY_LIMIT.as_secs(), layout.root.join("logs").display());
                Exit::Trouble
            }
        },
        () = wait_quit(quit.clone()) => Exit::Ok,
    };
    let _ = stop_tx.send(true);
    for child in children {
        child.stopped().await;
    }
    if let Some(state) = &options.state {
        let _ = std::fs::remove_file(state);
    }
    drop(network);
    eprintln!("mesh {} stopped", plan.mesh);
    exit
}

/// Creates the namespaces of an isolated plan and installs each one's capture rules.
async fn isolate(
    plan: &Plan,
    binaries: &Binaries,
    prefix: &str,
) -> Result<isolated::Network, String> {
    let pods: Vec<isolated::Pod> = plan
        .workloads
        .iter()
        .filter_map(|w| w.pod.clone())
        .collect();
    let mut hosts = String::from("127.0.0.1 localhost\n");
    for service in &plan.services {
        hosts.push_str(&format!("{} {}\n", service.ip, service.names.join(" ")));
    }
    let network = isolated::Network::create(prefix, &pods, &hosts).await?;
    for pod in &pods {
        isolated::capture(&binaries.agent, pod).await?;
    }
    eprintln!(
        "isolated: {} workload namespaces under {} (198.18.0.0/15)",
        pods.len(),
        network.outer()
    );
    Ok(network)
}

/// Checks the mesh and reports what it found; `None` when it has errors.
fn compile(paths: &[PathBuf], style: Style) -> Option<Checked> {
    let checked = match mesh_compiler::check_paths(paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return None;
        }
    };
    if checked.errors() > 0 || checked.warnings() > 0 {
        report_human(&checked, style);
    }
    (checked.errors() == 0).then_some(checked)
}

/// Starts every workload's app and agent under supervisors, `[app, agent]` per workload,
/// then every gateway's agent.
fn start(
    plan: &Plan,
    binaries: &Binaries,
    layout: &Layout,
    options: &Options,
    stop: &signal_watch::Receiver<bool>,
) -> Result<Vec<Supervised>, String> {
    // What every agent is told besides its own addresses.
    let common = |mut command: tokio::process::Command| {
        if let Some(endpoint) = &options.otlp_endpoint {
            command.arg("--otlp-endpoint").arg(endpoint);
        }
        command
    };
    let mut children = Vec::new();
    for workload in &plan.workloads {
        children.push(processes::supervise(
            format!("app {}", workload.label()),
            processes::app_command(binaries, workload),
            &layout.log(workload, "app"),
            stop.clone(),
        )?);
        children.push(processes::supervise(
            format!("agent {}", workload.label()),
            common(processes::agent_command(binaries, layout, workload)),
            &layout.log(workload, "agent"),
            stop.clone(),
        )?);
    }
    for gateway in &plan.gateways {
        children.push(processes::supervise(
            gateway.label(),
            common(processes::gateway_command(binaries, layout, gateway)),
            &layout.gateway_log(gateway),
            stop.clone(),
        )?);
    }
    Ok(children)
}

/// The mesh is ready: tell the user, then follow edits until asked to stop.
async fn serve(
    options: &Options,
    plan: &Plan,
    layout: &Layout,
    children: &[Supervised],
    mut changes: Option<&mut watch::Changes>,
    quit: signal_watch::Receiver<bool>,
    style: Style,
) -> Exit {
    print!("{}", report::table(plan, &layout.root));
    if let Some(path) = &options.state {
        let (pairs, gateways) = children.split_at(plan.workloads.len() * 2);
        let pids: Vec<_> = pairs
            .chunks(2)
            .map(|pair| (pair.get(1).and_then(Supervised::pid), pair[0].pid()))
            .collect();
        let gateway_pids: Vec<_> = gateways.iter().map(Supervised::pid).collect();
        if let Err(e) = report::write_state(path, &report::state(plan, &pids, &gateway_pids)) {
            return trouble(&e);
        }
    }
    if options.watch {
        eprintln!("watching {} for changes", display_paths(&options.paths));
    }
    loop {
        let change = async {
            match changes.as_deref_mut() {
                Some(changes) => changes.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait_quit(quit.clone()) => return Exit::Ok,
            Some(()) = change => recompile(&options.paths, plan, layout, style),
        }
    }
}

/// A `.mesh` file changed: check again and, when clean, rewrite the configs the agents
/// watch. A mesh with errors changes nothing.
fn recompile(paths: &[PathBuf], running: &Plan, layout: &Layout, style: Style) {
    eprintln!("change detected: recompiling");
    let Some(checked) = compile(paths, style) else {
        eprintln!("error: the mesh has errors; the running mesh is unchanged");
        return;
    };
    if let Ok(next) = plan::plan(&checked, 0)
        && plan::shape(&next) != plan::shape(running)
    {
        eprintln!(
            "warning: services or subsets were added or removed; restart `meshc up` to start \
             or stop their workloads (the other changes are applied)"
        );
    }
    let configs = mesh_compiler::emit::files(&checked.mesh, &checked.cedar);
    match setup::write_configs(layout, &configs) {
        Ok(0) => eprintln!("recompiled: no config changed"),
        Ok(n) => eprintln!(
            "recompiled: {n} file{} changed; the agents reload them",
            if n == 1 { "" } else { "s" }
        ),
        Err(e) => eprintln!("error: {e}; the running mesh may be partly updated"),
    }
}

/// Resolves once [`shutdown_signal`] has fired.
async fn wait_quit(mut quit: signal_watch::Receiver<bool>) {
    let _ = quit.wait_for(|quit| *quit).await;
}

/// Ctrl-C, SIGTERM, or SIGHUP (the terminal went away): every way of being asked to stop
/// that can be caught, so the children are never left behind.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let caught = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = caught(SignalKind::interrupt()) => {}
        () = caught(SignalKind::terminate()) => {}
        () = caught(SignalKind::hangup()) => {}
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn trouble(message: &str) -> Exit {
    eprintln!("error: {message}");
    Exit::Trouble
}
