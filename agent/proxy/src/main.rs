//! `mesh-agent`: the sidecar binary. Everything lives in the library; this parses the
//! command line, sets up logging and runs the agent until SIGTERM or Ctrl-C; `mesh-agent
//! capture …` instead installs the iptables rules of transparent capture (`capture`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|first| first == "capture")
    {
        return capture();
    }
    let args = mesh_agent::Args::parse();
    mesh_agent::logging::init(args.log_format);
    let mut builder = match args.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(threads));
            builder
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(mesh_agent::run(args, mesh_agent::shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "agent stopped");
            eprintln!("error: {error}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `mesh-agent capture …`: installs (or removes) the iptables rules of transparent capture.
fn capture() -> std::process::ExitCode {
    let args = mesh_agent::capture::CaptureArgs::parse_from(
        std::iter::once(std::ffi::OsString::from("mesh-agent capture"))
            .chain(std::env::args_os().skip(2)),
    );
    match mesh_agent::capture::run(&args) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::from(1)
        }
    }
}
