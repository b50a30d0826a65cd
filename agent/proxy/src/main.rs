//! `mesh-agent`: the sidecar binary. Everything lives in the library; this parses the
//! command line, sets up logging and runs the agent until SIGTERM or Ctrl-C.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = mesh_agent::Args::parse();
    mesh_agent::logging::init(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
