//! Reading and writing the PEM files of an identity directory.
//!
//! Writes are atomic (a temporary file in the same directory, then a rename), because the
//! agent watches these files and must never read half of one; a workload identity's files
//! are replaced together ([`write_versioned`], Kubernetes' `..data` layout), so it never
//! reads a new key beside an old certificate either. Private keys are created
//! with mode 0600 from the start, so there is no moment at which another user could read
//! them. Reads turn every problem into an [`IdentityError`] that names the file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::IdentityError;

/// The file mode of files holding a private key.
pub(crate) const PRIVATE_MODE: u32 = 0o600;
/// The file mode of files holding only public material.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Creates `dir` (and its parents) if needed.
pub(crate) fn create_dir(dir: &Path) -> Result<(), IdentityError> {
    fs::create_dir_all(dir).map_err(|source| IdentityError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Replaces `path` with `contents`, atomically; the new file has mode `mode` from creation.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = temp_path(path);
    let write_error = |source| IdentityError::Write {
        path: path.to_owned(),
        source,
    };
    // A temporary file left by a crash would make `create_new` fail.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_error(e)),
    }
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_error)
}

/// The link to the current version of a versioned directory's files (Kubernetes' name for
/// it in a mounted Secret or ConfigMap).
pub(crate) const CURRENT: &str = "..data";

/// Replaces the files of `dir` as one step, as Kubernetes updates a mounted Secret: they
/// are written into a new hidden version directory, the [`CURRENT`] link is switched to it
/// with one rename, and each file name is a link through [`CURRENT`]. A reader that
/// resolves [`CURRENT`] once ([`current`]) sees the old set or the new one, never a mix.
/// Older versions than the one replaced are removed. `files`: name, contents, mode.
#[cfg(unix)]
pub(crate) fn write_versioned(
    dir: &Path,
    files: &[(&str, &[u8], u32)],
) -> Result<(), IdentityError> {
    create_dir(dir)?;
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| IdentityError::Write { path, source }
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let version = format!("..{stamp}.{}", std::process::id());
    let version_dir = dir.join(&version);
    fs::create_dir(&version_dir).map_err(write_error(&version_dir))?;
    for (name, contents, mode) in files {
        let path = version_dir.join(name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, *mode);
        let written = options.open(&path).and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        });
        written.map_err(write_error(&path))?;
    }
    let previous = fs::read_link(dir.join(CURRENT)).ok();
    replace_link(&dir.join(CURRENT), Path::new(&version)).map_err(write_error(dir))?;
    for (name, _, _) in files {
        let path = dir.join(name);
        let target = Path::new(CURRENT).join(name);
        if fs::read_link(&path).ok().as_deref() != Some(target.as_path()) {
            replace_link(&path, &target).map_err(write_error(&path))?;
        }
    }
    // Readers may still be inside the version just replaced; anything older goes.
    let entries = fs::read_dir(dir).map_err(write_error(dir))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let keep = name == CURRENT
            || name == version
            || previous.as_deref() == Some(Path::new(name.as_ref()));
        if name.starts_with("..") && !keep && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Points the link `path` at `target` with one rename (over a file, or a link).
#[cfg(unix)]
fn replace_link(path: &Path, target: &Path) -> std::io::Result<()> {
    let tmp = temp_path(path);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, path)
}

/// Without symbolic links: each file replaced atomically on its own, in order.
#[cfg(not(unix))]
pub(crate) fn write_versioned(
    dir: &Path,
    files: &[(&str, &[u8], u32)],
) -> Result<(), IdentityError> {
    create_dir(dir)?;
    for (name, contents, mode) in files {
        write_atomic(&dir.join(name), contents, *mode)?;
    }
    Ok(())
}

/// The version directory `dir`'s [`CURRENT`] link names now (`dir` itself when there is
/// none): resolve it once, then read each file with [`read_in`].
pub(crate) fn current(dir: &Path) -> PathBuf {
    match fs::read_link(dir.join(CURRENT)) {
        Ok(version) => dir.join(version),
        Err(_) => dir.to_owned(),
    }
}

/// Reads `path`; when it is a link through [`CURRENT`], the file of the same name in
/// `current` (a version resolved before). Errors name `path`.
pub(crate) fn read_in(path: &Path, current: &Path) -> Result<Vec<u8>, IdentityError> {
    match (path.file_name(), fs::read_link(path)) {
        (Some(name), Ok(target)) if target == Path::new(CURRENT).join(name) => {
            read_named(&current.join(name), path)
        }
        _ => read(path),
    }
}

/// Reads a set of files of `dir` from one version: resolves [`CURRENT`], reads each with
/// [`read_in`], and starts again (a few times) if the link moved meanwhile, so a swap
/// between two reads cannot mix versions.
pub(crate) fn read_consistent<const N: usize>(
    dir: &Path,
    paths: &[PathBuf; N],
) -> Result<[Vec<u8>; N], IdentityError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let version = current(dir);
        let read = paths.each_ref().map(|path| read_in(path, &version));
        if attempt < 5 && current(dir) != version {
            continue;
        }
        let mut first_error = Ok(());
        let read = read.map(|file| {
            file.unwrap_or_else(|error| {
                if first_error.is_ok() {
                    first_error = Err(error);
                }
                Vec::new()
            })
        });
        return first_error.map(|()| read);
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Reads a whole file; a missing file is [`IdentityError::Missing`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    read_named(path, path)
}

/// Reads `path`; errors name `named`.
fn read_named(path: &Path, named: &Path) -> Result<Vec<u8>, IdentityError> {
    fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => IdentityError::Missing {
            path: named.to_owned(),
        },
        _ => IdentityError::Read {
            path: named.to_owned(),
            source,
        },
    })
}

/// Every certificate in a PEM file, in order; at least one.
pub(crate) fn certificates(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(IdentityError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn private_key(
    path: &Path,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, IdentityError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => IdentityError::NoKey {
            path: path.to_owned(),
        },
        e => pem_error(path, e),
    })
}

fn pem_error(path: &Path, error: pem::Error) -> IdentityError {
    IdentityError::BadPem {
        path: path.to_owned(),
        problem: match error {
            pem::Error::MissingSectionEnd { end_marker } => format!(
                "a section has no end line (expected {:?})",
                String::from_utf8_lossy(&end_marker)
            ),
            pem::Error::IllegalSectionStart { line } => format!(
                "malformed section start line {:?}",
                String::from_utf8_lossy(&line)
            ),
            pem::Error::Base64Decode(e) => format!("bad base64 in a section: {e}"),
            e => e.to_string(),
        },
    }
}
