//! Reading the few fields the mesh needs out of a certificate: its SPIFFE id (the one URI
//! subject alternative name), its validity window, and whether it is a CA.
//!
//! Signatures and chains are checked by webpki (through rustls) elsewhere; this module only
//! reads, with x509-parser.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::error::IdentityError;
use mesh_vocab::SpiffeId;

/// The SPIFFE id of the peer of a completed TLS connection, from its certificate chain
/// (`rustls::CommonState::peer_certificates`): the end-entity certificate's one URI SAN.
///
/// `None` when there is no certificate, it does not parse, it has no URI SAN or several,
/// or the URI is not a mesh SPIFFE id. The chain is not verified here: call this only on
/// certificates that the handshake verified (the configs of this crate do).
pub fn peer_spiffe_id(certs: &[CertificateDer<'_>]) -> Option<SpiffeId> {
    let leaf = certs.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    match uri_sans(&cert).ok()?.as_slice() {
        [uri] => SpiffeId::parse(uri).ok(),
        _ => None,
    }
}

/// Parses a DER certificate; the error names `path`.
pub(crate) fn parse<'a>(
    path: &Path,
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, IdentityError> {
    match X509Certificate::from_der(der.as_ref()) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(IdentityError::BadCertificate {
            path: path.to_owned(),
            problem: format!("it does not parse as X.509: {e}"),
        }),
    }
}

/// The certificate's SPIFFE id: it must have exactly one URI SAN, and it must be one.
pub(crate) fn spiffe_id(
    path: &Path,
    cert: &X509Certificate<'_>,
) -> Result<SpiffeId, IdentityError> {
    let uris = uri_sans(cert).map_err(|problem| IdentityError::BadCertificate {
        path: path.to_owned(),
        problem,
    })?;
    match uris.as_slice() {
        [] => Err(IdentityError::NoSpiffeId {
            path: path.to_owned(),
        }),
        [uri] => SpiffeId::parse(uri).map_err(|source| IdentityError::BadSpiffeId {
            path: path.to_owned(),
            source,
        }),
        _ => Err(IdentityError::SeveralUris {
            path: path.to_owned(),
            count: uris.len(),
        }),
    }
}

fn uri_sans<'a>(cert: &X509Certificate<'a>) -> Result<Vec<&'a str>, String> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subject alternative name extension: {e}"))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Checks that `now` is inside the certificate's validity window.
pub(crate) fn check_validity(
    path: &Path,
    cert: &X509Certificate<'_>,
    now: SystemTime,
) -> Result<(), IdentityError> {
    let validity = cert.validity();
    let now = unix_seconds(now);
    if now < validity.not_before.timestamp() {
        return Err(IdentityError::NotYetValid {
            path: path.to_owned(),
            not_before: rfc3339(validity.not_before),
        });
    }
    if now > validity.not_after.timestamp() {
        return Err(IdentityError::Expired {
            path: path.to_owned(),
            not_after: rfc3339(validity.not_after),
        });
    }
    Ok(())
}

/// A certificate time as a [`SystemTime`].
pub(crate) fn system_time(time: ASN1Time) -> SystemTime {
    let secs = time.timestamp();
    let shifted = match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
    };
    shifted.unwrap_or(UNIX_EPOCH)
}

/// Seconds since the Unix epoch, negative before it.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// A time as RFC 3339, e.g. `2025-01-31T12:00:00Z`.
pub(crate) fn rfc3339(time: ASN1Time) -> String {
    format_time(time.to_datetime())
}

/// A time as RFC 3339, e.g. `2025-01-31T12:00:00Z`.
pub(crate) fn format_time(time: OffsetDateTime) -> String {
    time.format(&Rfc3339)
        .unwrap_or_else(|_| format!("{} (unix time)", time.unix_timestamp()))
}
