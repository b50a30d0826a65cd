//! `mesh-demo`: the app `meshc up` starts next to every mesh agent, so a local mesh has
//! something to route to. It echoes every request back as JSON (which service and subset
//! answered, and what arrived), fails or slows down when the query asks it to, and calls
//! other services through its own sidecar (`/call/<service>/...`) so traffic crosses the
//! mesh the way a real app's would.

mod answer;
mod call;
mod server;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "mesh-demo", version, about)]
struct Args {
    /// The service this app plays, as NS/NAME (e.g. `bookinfo/reviews`).
    #[arg(long, value_name = "NS/NAME", value_parser = parse_service)]
    service: String,
    /// The subset (version) this instance belongs to, echoed in every answer.
    #[arg(long)]
    subset: Option<String>,
    /// Where to serve HTTP/1.1 and h2c; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The agent's outbound listener, through which `/call/...` requests go. Without it
    /// calls connect to the named host directly, as an app under transparent capture
    /// does (the agent intercepts the connection).
    #[arg(long, value_name = "ADDR")]
    sidecar: Option<SocketAddr>,
}

/// Accepts `NS/NAME` with both parts non-empty and no further `/`.
fn parse_service(value: &str) -> Result<String, String> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(value.to_owned())
        }
        _ => Err(format!(
            "expected NS/NAME (e.g. bookinfo/reviews), got `{value}`"
        )),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mesh-demo: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mesh-demo: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, announces the bound address on stdout, and serves until SIGTERM or Ctrl-C.
async fn run(args: Args) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    let line = serde_json::json!({ "listen": bound.to_string() });
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        tracing::warn!(%error, "cannot announce the bound address on stdout");
    }
    drop(stdout);
    tracing::info!(
        service = %args.service,
        subset = args.subset.as_deref().unwrap_or("-"),
        listen = %bound,
        sidecar = ?args.sidecar,
        "serving"
    );
    let app = server::App::new(args.service, args.subset, args.sidecar);
    tokio::select! {
        () = server::serve(listener, app) => {}
        () = shutdown() => tracing::info!("stopping"),
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (only Ctrl-C off Unix).
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_service;

    #[test]
    fn service_must_be_ns_slash_name() {
        assert!(parse_service("bookinfo/reviews").is_ok());
        for bad in ["reviews", "/reviews", "bookinfo/", "a/b/c", ""] {
            assert!(parse_service(bad).is_err(), "{bad}");
        }
    }
}
