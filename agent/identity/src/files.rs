//! Reading and writing the PEM files of an identity directory.
//!
//! Writes are atomic (a temporary file in the same directory, then a rename), because the
//! agent watches these files and must never read half of one. Private keys are created
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

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Reads a whole file; a missing file is [`IdentityError::Missing`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => IdentityError::Missing {
            path: path.to_owned(),
        },
        _ => IdentityError::Read {
            path: path.to_owned(),
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
