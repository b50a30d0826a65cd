//! `meshc doctor PATH... [--ca DIR] [--context C] [--format human|json]`: what is wrong
//! with the mesh in the cluster kubectl would talk to, checked by `mesh_kube::doctor`
//! against what `meshc manifests` makes of PATH (with the same `--image`, `--injector`
//! and `--issuer` as `meshc apply` was given). One ✔ or ✘ line per check, a hint under
//! each ✘; exit 1 when anything is ✘, 2 when the cluster cannot be asked.

use std::path::PathBuf;

use mesh_compiler::report::Style;
use mesh_kube::KubeError;
use mesh_kube::doctor::{self, Expected, Finding};
use mesh_kube::manifests::{self, Identities};

use super::args::{InjectorArgs, IssuerArgs, IssuerKind};
use super::{Exit, mesh_input};

/// What `meshc doctor` was asked to check.
pub struct Request {
    pub paths: Vec<PathBuf>,
    pub ca: Option<PathBuf>,
    pub context: Option<String>,
    pub json: bool,
    pub image: String,
    pub injector: InjectorArgs,
    pub issuer: IssuerArgs,
}

pub fn run(request: &Request, style: Style) -> Exit {
    let mesh = match mesh_input::load(&request.paths, style, "checked") {
        Ok(mesh) => mesh,
        Err(exit) => return exit,
    };
    let ca = match request.ca.as_deref().map(mesh_input::load_ca).transpose() {
        Ok(ca) => ca,
        Err(exit) => return exit,
    };
    if (request.injector.injector || request.issuer.issuer == IssuerKind::CertManager)
        && ca.is_none()
    {
        eprintln!("error: --injector and --issuer cert-manager need --ca, as for `meshc apply`");
        return Exit::Trouble;
    }
    let ca_files = match &request.ca {
        Some(dir) => match super::manifests::ca_files(dir, &request.issuer) {
            Ok(files) => files,
            Err(exit) => return exit,
        },
        None => None,
    };
    let runtime = match mesh_input::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let apply = format!(
        "meshc apply {}{}",
        request
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        if request.ca.is_some() {
            " --ca DIR"
        } else {
            ""
        }
    );
    let result: Result<Vec<Finding>, KubeError> = runtime.block_on(async {
        let client = mesh_kube::apply::client(request.context.as_deref()).await?;
        // Identity Secrets are checked as certificates, not as objects to match.
        let identities = match (&ca_files, &ca) {
            (Some(files), _) => Identities::CertManager {
                ca: files,
                namespace: &request.issuer.cert_manager_namespace,
            },
            _ => Identities::None,
        };
        let none = |_: &str, _: &str| None;
        let mut objects = manifests::objects(&mesh, identities, &none, &request.image)?;
        if let Some(ca) = &ca {
            objects = super::manifests::with_injector(
                objects,
                &mesh,
                &request.injector,
                &request.image,
                ca,
                &none,
            )?;
        }
        let expected = Expected {
            mesh: &mesh,
            objects: &objects,
            ca_bundle: ca.as_ref().map(|ca| ca.bundle_pem().as_bytes()),
            apply: &apply,
        };
        doctor::run(&client, &expected).await
    });
    let findings = match result {
        Ok(findings) => findings,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let failed = findings.iter().filter(|f| !f.ok).count();
    if request.json {
        let document = serde_json::json!({
            "mesh": mesh.name,
            "ok": failed == 0,
            "findings": findings,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
    } else {
        for finding in &findings {
            let mark = if finding.ok { "✔" } else { "✘" };
            println!("{mark} {}: {}", finding.subject, finding.message);
            if let Some(hint) = &finding.hint {
                println!("    hint: {hint}");
            }
        }
        println!(
            "{} check{}, {failed} failed",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
    }
    if failed == 0 {
        Exit::Ok
    } else {
        Exit::Findings
    }
}
