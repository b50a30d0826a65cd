//! The bridge from a checked mesh to `mesh-kube`: check the paths (refusing a mesh with
//! errors, as `compile` does) and describe each workload with the exact config bytes
//! `meshc compile` writes, so hashes agree everywhere.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use mesh_compiler::report::Style;
use mesh_kube::{GatewayInput, MeshInput, WorkloadInput};

use super::{Exit, report_human};

/// The compiled mesh under `paths`, or the exit code after reporting why there is none.
pub fn load(paths: &[PathBuf], style: Style, verb: &str) -> Result<MeshInput, Exit> {
    let checked = match mesh_compiler::check_paths(paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return Err(Exit::Trouble);
        }
    };
    if checked.errors() > 0 {
        report_human(&checked, style);
        eprintln!("error: not {verb}: the mesh has errors");
        return Err(Exit::Findings);
    }
    if checked.warnings() > 0 {
        report_human(&checked, style);
    }
    let files = mesh_compiler::emit::files(&checked.mesh, &checked.cedar);
    let mesh = &checked.mesh;
    let mut workloads: Vec<WorkloadInput> = mesh
        .services
        .iter()
        .map(|service| WorkloadInput {
            namespace: service.namespace.clone(),
            name: service.name.clone(),
            service_account: service.identity.clone(),
            spiffe_id: mesh_compiler::emit::spiffe_id(mesh, service),
            ports: service.ports.iter().map(|p| p.number).collect(),
            config: files
                .get(&format!("{}/{}.json", service.namespace, service.name))
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    workloads.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(MeshInput {
        name: mesh.name.clone(),
        trust_domain: mesh.trust_domain.clone(),
        workloads,
        gateways: gateways(&checked, &files),
        cedar_schema: checked.cedar.schema.clone(),
        sources: sources(&checked.loaded),
    })
}

/// The mesh's gateways, with the config bytes `meshc compile` writes.
fn gateways(
    checked: &mesh_compiler::Checked,
    files: &BTreeMap<String, String>,
) -> Vec<GatewayInput> {
    let mut gateways: Vec<GatewayInput> =
        mesh_compiler::emit::gateways(&checked.mesh, &checked.cedar)
            .into_iter()
            .filter_map(|(key, config)| {
                let gateway = config.gateway.as_ref()?;
                let (namespace, name) = key.split_once('/')?;
                let service_account = config
                    .workload
                    .identity
                    .rsplit("/sa/")
                    .next()
                    .unwrap_or(name)
                    .to_string();
                Some(GatewayInput {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    service_account,
                    spiffe_id: config.workload.identity.clone(),
                    listeners: gateway.listeners.iter().map(|l| l.port).collect(),
                    config: files
                        .get(&format!("{key}.json"))
                        .cloned()
                        .unwrap_or_default(),
                })
            })
            .collect();
    gateways.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    gateways
}

/// The mesh's own source files by path relative to their common directory.
fn sources(loaded: &mesh_compiler::load::Loaded) -> BTreeMap<String, String> {
    let files: Vec<(PathBuf, &str)> = loaded
        .files
        .iter()
        .filter(|f| !f.is_std)
        .map(|f| (normalized(Path::new(&f.source.name)), &*f.source.text))
        .collect();
    let mut common: Option<PathBuf> = None;
    for (path, _) in &files {
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        common = Some(match common {
            None => dir,
            Some(c) => c
                .components()
                .zip(dir.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    let common = common.unwrap_or_default();
    files
        .into_iter()
        .map(|(path, text)| {
            let relative = path.strip_prefix(&common).unwrap_or(&path);
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            (key, text.to_string())
        })
        .collect()
}

/// `path` made absolute, with `.` and `..` resolved without touching the file system.
fn normalized(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A runtime for the commands that talk to a cluster or to agents.
pub fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| {
            eprintln!("error: cannot start the async runtime: {err}");
            Exit::Trouble
        })
}

/// Loads the mesh CA from `dir`.
pub fn load_ca(dir: &std::path::Path) -> Result<mesh_identity::Ca, Exit> {
    mesh_identity::Ca::load(dir).map_err(|err| {
        eprintln!(
            "error: cannot load the mesh CA from {}: {err}",
            dir.display()
        );
        Exit::Trouble
    })
}
