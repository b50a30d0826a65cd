//! `meshc apply PATH... [--ca DIR] [--context C] [--dry-run client|server] [--prune]
//! [--force-conflicts]`: server-side apply of the objects `meshc manifests` writes, with
//! the cluster found as kubectl finds it. Without `--ca` the identity Secrets are left
//! alone (neither applied nor pruned). Prints one line per object; the first API error
//! stops it with exit code 2.

use std::path::PathBuf;

use mesh_compiler::report::Style;
use mesh_kube::apply::{self, DryRun, Options};
use mesh_kube::certs::{Issuer, SECRET_CERT_TTL};
use mesh_kube::manifests::Identities;
use mesh_kube::{KubeError, labels, manifests, object};

use super::{Exit, mesh_input};

/// What `meshc apply` was asked to do.
pub struct Request {
    pub paths: Vec<PathBuf>,
    pub ca: Option<PathBuf>,
    pub context: Option<String>,
    pub dry_run: Option<super::DryRunArg>,
    pub prune: bool,
    pub force_conflicts: bool,
    pub image: String,
    pub injector: super::args::InjectorArgs,
    pub issuer: super::args::IssuerArgs,
}

pub fn run(request: &Request, style: Style) -> Exit {
    let mesh = match mesh_input::load(&request.paths, style, "applied") {
        Ok(mesh) => mesh,
        Err(exit) => return exit,
    };
    let ca = match request.ca.as_deref().map(mesh_input::load_ca).transpose() {
        Ok(ca) => ca,
        Err(exit) => return exit,
    };
    let ca_files = match &request.ca {
        Some(dir) => match super::manifests::ca_files(dir, &request.issuer) {
            Ok(files) => files,
            Err(exit) => return exit,
        },
        None => None,
    };
    if request.issuer.issuer == super::args::IssuerKind::CertManager && ca.is_none() {
        eprintln!(
            "error: --issuer cert-manager needs --ca: its ClusterIssuer signs with the mesh CA"
        );
        return Exit::Trouble;
    }
    if request.injector.injector && ca.is_none() {
        eprintln!("error: --injector needs --ca: the mesh CA signs the injector's certificate");
        return Exit::Trouble;
    }
    let runtime = match mesh_input::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let options = Options {
        mesh: mesh.name.clone(),
        dry_run: match request.dry_run {
            None => DryRun::No,
            Some(super::DryRunArg::Client) => DryRun::Client,
            Some(super::DryRunArg::Server) => DryRun::Server,
        },
        force_conflicts: request.force_conflicts,
        prune: request.prune,
        prune_kinds: object::KINDS
            .iter()
            .copied()
            // Without the CA, identities are not this run's business.
            .filter(|k| ca.is_some() || !matches!(*k, "Secret" | "ClusterIssuer" | "Certificate"))
            .collect(),
    };
    let result: Result<(), KubeError> = runtime.block_on(async {
        let client = apply::client(request.context.as_deref()).await?;
        let mut secrets: Vec<(String, String)> = mesh
            .identities()
            .into_iter()
            .map(|(ns, sa, _)| (ns, labels::secret_name(&sa)))
            .collect();
        if request.injector.injector {
            secrets.push((
                request.injector.injector_namespace.clone(),
                labels::secret_name(mesh_kube::injector::NAME),
            ));
        }
        let existing = match &ca {
            Some(_) if ca_files.is_none() || request.injector.injector => {
                apply::existing_tls(&client, &secrets).await?
            }
            _ => Default::default(),
        };
        let issuer = ca.as_ref().map(|ca| Issuer::new(ca, SECRET_CERT_TTL));
        let lookup =
            |ns: &str, name: &str| existing.get(&(ns.to_string(), name.to_string())).cloned();
        let identities = match &issuer {
            Some(issuer) => {
                super::manifests::identities(&request.issuer, issuer, ca_files.as_ref())
            }
            None => Identities::None,
        };
        let mut objects = manifests::objects(&mesh, identities, &lookup, &request.image)?;
        if let Some(ca) = &ca {
            objects = super::manifests::with_injector(
                objects,
                &mesh,
                &request.injector,
                &request.image,
                ca,
                &lookup,
            )?;
        }
        apply::apply(&client, &objects, &options, &mut |line| println!("{line}")).await
    });
    match result {
        Ok(()) => Exit::Ok,
        Err(err) => {
            eprintln!("error: {err}");
            Exit::Trouble
        }
    }
}
