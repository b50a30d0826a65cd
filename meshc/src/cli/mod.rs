//! Dispatch: one module per subcommand, one exit-code enum, and the human report of a
//! checked mesh that several subcommands print. The command line itself is in [`args`].

mod apply;
mod args;
mod check;
mod compile;
mod diff;
mod doctor;
mod explain;
mod fmt;
mod graph;
mod identity;
mod import;
mod inject;
mod lsp;
mod manifests;
mod mesh_input;
mod scrape;
mod stat;
mod tap;
mod test;
mod up;
mod webhook;

use std::io::IsTerminal;

use clap::Parser;
use mesh_compiler::report::Style;

use args::{Cli, Command, IdentityCommand};
pub use args::{DryRunArg, ExplainFormat, Format};

/// Exit codes shared by every subcommand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything is fine.
    Ok = 0,
    /// The input has problems (errors, unformatted files, failing tests).
    Findings = 1,
    /// Usage or I/O problems: nothing could be judged.
    Trouble = 2,
}

/// Parses the command line and runs the subcommand.
pub fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    let style = Style::detect(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    let exit = match cli.command {
        Command::Check {
            paths,
            format,
            deny_warnings,
        } => check::run(&paths, format, deny_warnings, style),
        Command::Up {
            paths,
            base_port,
            state,
            watch,
            isolated,
            otlp_endpoint,
        } => up::run(
            &up::Options {
                paths,
                base_port,
                state,
                watch,
                isolated,
                otlp_endpoint,
            },
            style,
        ),
        Command::Identity { command } => match command {
            IdentityCommand::Init { dir, name, force } => identity::init(&dir, &name, force),
            IdentityCommand::Issue {
                ca,
                trust_domain,
                namespace,
                service_account,
                ttl,
                out,
            } => identity::issue(&identity::Issue {
                ca: &ca,
                trust_domain: &trust_domain,
                namespace: &namespace,
                service_account: &service_account,
                ttl: &ttl,
                out: &out,
            }),
        },
        Command::Fmt { check, paths } => fmt::run(&paths, check, style),
        Command::Import { files, out } => import::run(&files, out.as_deref(), style),
        Command::Compile { paths, out } => compile::run(&paths, &out, style),
        Command::Test { paths } => test::run(&paths, style),
        Command::Manifests {
            paths,
            ca,
            out,
            image,
            injector,
            issuer,
        } => manifests::run(
            &manifests::Request {
                paths,
                ca,
                out,
                image,
                injector,
                issuer,
            },
            style,
        ),
        Command::Apply {
            paths,
            ca,
            context,
            dry_run,
            prune,
            force_conflicts,
            image,
            injector,
            issuer,
        } => apply::run(
            &apply::Request {
                paths,
                ca,
                context,
                dry_run,
                prune,
                force_conflicts,
                image,
                injector,
                issuer,
            },
            style,
        ),
        Command::Graph {
            paths,
            state,
            window,
            out,
        } => graph::run(
            &graph::Request {
                paths,
                state,
                window,
                out,
            },
            style,
        ),
        Command::Stat {
            state,
            kubernetes,
            context,
            namespace,
            by,
            window,
            watch,
            format,
        } => stat::run(&stat::Request {
            source: match state {
                Some(state) if !kubernetes => stat::Source::State(state),
                _ => stat::Source::Kubernetes { context, namespace },
            },
            window,
            by_rule: by == Some(args::StatBy::Rule),
            watch,
            json: format == args::ExplainFormat::Json,
        }),
        Command::Tap {
            workload,
            state,
            to,
            path,
            method,
            direction,
            max,
            format,
        } => tap::run(&tap::Request {
            workload,
            state,
            to,
            path,
            method,
            direction: direction.map(|d| d.as_str().to_string()),
            max,
            json: format == args::ExplainFormat::Json,
        }),
        Command::Doctor {
            paths,
            ca,
            context,
            format,
            image,
            injector,
            issuer,
        } => doctor::run(
            &doctor::Request {
                paths,
                ca,
                context,
                json: format == args::ExplainFormat::Json,
                image,
                injector,
                issuer,
            },
            style,
        ),
        Command::Inject {
            file,
            mesh,
            image,
            pre_stop_seconds,
            mode,
            otlp_endpoint,
        } => inject::run(
            &file,
            &mesh,
            &mesh_kube::inject::Options {
                image,
                pre_stop_seconds,
                mode: mode.into(),
                otlp_endpoint,
            },
            style,
        ),
        Command::Webhook {
            mesh,
            image,
            pre_stop_seconds,
            mode,
            otlp_endpoint,
            listen,
            tls_cert,
            tls_key,
        } => webhook::run(
            webhook::Serve {
                mesh,
                options: mesh_kube::inject::Options {
                    image,
                    pre_stop_seconds,
                    mode: mode.into(),
                    otlp_endpoint,
                },
                listen,
                cert: tls_cert,
                key: tls_key,
            },
            style,
        ),
        Command::Lsp { args } => return lsp::run(args),
        Command::Diff {
            paths,
            git,
            format,
            deny,
        } => diff::run(
            &diff::Request {
                paths,
                git,
                json: format == ExplainFormat::Json,
                deny_widen: deny == Some(args::DiffDeny::Widen),
            },
            style,
        ),
        Command::Explain {
            path,
            from,
            to,
            method,
            url_path,
            connect,
            headers,
            format,
        } => explain::run(
            &explain::Question {
                paths: vec![path],
                from,
                to,
                probe: match (connect, method, url_path) {
                    (Some(port), _, _) => explain::Probe::Connect(port),
                    (None, method, path) => explain::Probe::Request {
                        method: method.unwrap_or_default(),
                        path: path.unwrap_or_default(),
                    },
                },
                headers,
                json: format == ExplainFormat::Json,
            },
            style,
        ),
    };
    std::process::ExitCode::from(exit as u8)
}

/// Prints every finding of a checked mesh for people, file by file, and a summary line.
pub fn report_human(checked: &mesh_compiler::Checked, style: Style) {
    eprint!(
        "{}",
        mesh_compiler::report::render_findings(&checked.loaded, &checked.findings, style)
    );
    let files = checked.loaded.files.iter().filter(|f| !f.is_std).count();
    let (errors, warnings) = (checked.errors(), checked.warnings());
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    eprintln!(
        "checked {files} file{}: {errors} error{}, {warnings} warning{}",
        plural(files),
        plural(errors),
        plural(warnings)
    );
}
