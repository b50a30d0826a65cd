//! `meshc manifests PATH... --ca DIR -o OUT`: everything the mesh needs in a cluster as
//! Kubernetes YAML, for GitOps. `-o -` writes one multi-document stream to stdout; `-o DIR`
//! writes one file per object (`DIR/NAMESPACE/KIND-NAME.yaml`, cluster-scoped objects in
//! `DIR/_cluster/`), replacing only files whose bytes change and removing the files of
//! this mesh's objects that it no longer produces, and keeps the certificates of Secrets
//! already there while they are good so that re-running changes nothing. With `--issuer
//! cert-manager` cert-manager issues and renews the identities instead.

use std::path::{Path, PathBuf};

use mesh_compiler::report::Style;
use mesh_kube::cert_manager::CaFiles;
use mesh_kube::certs::{Issuer, SECRET_CERT_TTL, TlsData};
use mesh_kube::injector::{self, Injector};
use mesh_kube::manifests::Identities;
use mesh_kube::{KubeError, MeshInput, Object, manifests};

use super::args::{InjectorArgs, IssuerArgs, IssuerKind};
use super::{Exit, mesh_input};

/// What `meshc manifests` was asked to do.
pub struct Request {
    pub paths: Vec<PathBuf>,
    pub ca: PathBuf,
    pub out: PathBuf,
    pub image: String,
    pub injector: InjectorArgs,
    pub issuer: IssuerArgs,
}

pub fn run(request: &Request, style: Style) -> Exit {
    let (out, image, injector) = (&request.out, &request.image, &request.injector);
    let mesh = match mesh_input::load(&request.paths, style, "written") {
        Ok(mesh) => mesh,
        Err(exit) => return exit,
    };
    let ca = match mesh_input::load_ca(&request.ca) {
        Ok(ca) => ca,
        Err(exit) => return exit,
    };
    let ca_files = match ca_files(&request.ca, &request.issuer) {
        Ok(files) => files,
        Err(exit) => return exit,
    };
    let issuer = Issuer::new(&ca, SECRET_CERT_TTL);
    let to_stdout = out == Path::new("-");
    let existing = |namespace: &str, name: &str| {
        if to_stdout {
            return None;
        }
        let file = out.join(manifests::file_name(Some(namespace), "Secret", name));
        manifests::tls_data_from_yaml(&std::fs::read_to_string(file).ok()?)
    };
    let identities = identities(&request.issuer, &issuer, ca_files.as_ref());
    let objects = manifests::objects(&mesh, identities, &existing, image)
        .and_then(|objects| with_injector(objects, &mesh, injector, image, &ca, &existing));
    let objects = match objects {
        Ok(objects) => objects,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    if to_stdout {
        return match manifests::to_yaml(&objects) {
            Ok(text) => {
                print!("{text}");
                Exit::Ok
            }
            Err(err) => {
                eprintln!("error: {err}");
                Exit::Trouble
            }
        };
    }
    let files = match manifests::files(&objects) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let mut written = 0usize;
    for (relative, text) in &files {
        let path = out.join(relative);
        match super::compile::write_if_changed(&path, text.as_bytes()) {
            Ok(changed) => written += usize::from(changed),
            Err(err) => {
                eprintln!("error: {}: {err}", path.display());
                return Exit::Trouble;
            }
        }
    }
    let removed = match remove_stale(out, &files, &mesh.name) {
        Ok(removed) => removed,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    written += removed;
    eprintln!(
        "wrote {} object{} of mesh {} into {} ({written} file{} changed)",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        mesh.name,
        out.display(),
        if written == 1 { "" } else { "s" }
    );
    Exit::Ok
}

/// The mesh CA's certificate and key files, when cert-manager issues from them.
pub(super) fn ca_files(dir: &Path, issuer: &IssuerArgs) -> Result<Option<CaFiles>, Exit> {
    if issuer.issuer != IssuerKind::CertManager {
        return Ok(None);
    }
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|err| {
            eprintln!("error: {}: {err}", path.display());
            Exit::Trouble
        })
    };
    Ok(Some(CaFiles {
        cert: read(mesh_identity::CA_CERT_FILE)?,
        key: read(mesh_identity::CA_KEY_FILE)?,
    }))
}

/// Who issues certificates: `meshc` with `issuer`, or cert-manager from `ca_files`.
pub(super) fn identities<'a>(
    args: &'a IssuerArgs,
    issuer: &'a Issuer<'a>,
    ca_files: Option<&'a CaFiles>,
) -> Identities<'a> {
    match ca_files {
        Some(ca) => Identities::CertManager {
            ca,
            namespace: &args.cert_manager_namespace,
        },
        None => Identities::Meshc(issuer),
    }
}

/// `objects`, plus the sidecar injector's when asked for, sorted. `existing` gives the
/// certificate data a Secret (namespace, name) holds now.
pub(super) fn with_injector(
    mut objects: Vec<Object>,
    mesh: &MeshInput,
    args: &InjectorArgs,
    image: &str,
    ca: &mesh_identity::Ca,
    existing: &dyn Fn(&str, &str) -> Option<TlsData>,
) -> Result<Vec<Object>, KubeError> {
    if !args.injector {
        return Ok(objects);
    }
    let options = Injector {
        namespace: args.injector_namespace.clone(),
        image: image.to_string(),
        mode: args.mode.into(),
    };
    let serving = existing(
        &options.namespace,
        &mesh_kube::labels::secret_name(injector::NAME),
    );
    objects.extend(injector::objects(
        &mesh.name,
        &options,
        &mesh.sources,
        ca,
        serving.as_ref(),
    )?);
    objects.sort_by_key(Object::sort_key);
    Ok(objects)
}

/// Removes `OUT/*/*.yaml` files holding an object of `mesh` that is not in `files`;
/// returns how many. Other files are left alone.
fn remove_stale(
    out: &Path,
    files: &std::collections::BTreeMap<String, String>,
    mesh: &str,
) -> std::io::Result<usize> {
    let mut removed = 0;
    for dir in std::fs::read_dir(out)? {
        let dir = dir?.path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir)? {
            let path = file?.path();
            let relative = path
                .strip_prefix(out)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if path.extension().is_none_or(|e| e != "yaml") || files.contains_key(&relative) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if manifests::is_object_of(&text, mesh) {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
