//! The CA and identity files: what `meshc` writes is what the agent loads; the certificates
//! have the shape the mesh relies on; keys are private; and every broken identity directory
//! is refused with an error that names the file and the problem.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{frontend, reviews};
use mesh_identity::rustls::pki_types::CertificateDer;
use mesh_identity::{Ca, Identity, IdentityError, SpiffeIdErrorKind, peer_spiffe_id};
use x509_parser::prelude::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn unix(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// An identity directory for `reviews`, issued by a new CA.
fn identity_dir() -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("mesh CA").unwrap();
    ca.issue(&reviews(), DAY)
        .unwrap()
        .write(dir.path())
        .unwrap();
    (dir, ca)
}

#[test]
fn a_ca_written_and_loaded_back_issues_certificates_its_bundle_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let generated = Ca::generate("mesh CA").unwrap();
    generated.write(&ca_dir).unwrap();
    assert_eq!(mode(&ca_dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&ca_dir.join("ca.pem")), 0o644);

    let loaded = Ca::load(&ca_dir).unwrap();
    assert_eq!(loaded.bundle_pem(), generated.bundle_pem());
    assert_eq!(unix(loaded.not_after()), unix(generated.not_after()));

    // A certificate from the loaded CA verifies under the original CA's bundle.
    let workload = dir.path().join("reviews");
    let issued = loaded.issue(&reviews(), DAY).unwrap();
    issued.write(&workload).unwrap();
    fs::write(workload.join("ca.pem"), generated.bundle_pem()).unwrap();
    let identity = Identity::load(&workload).unwrap();
    assert_eq!(identity.spiffe_id(), &reviews());
}

#[test]
fn identity_files_have_the_right_modes_even_over_older_files() {
    let dir = tempfile::tempdir().unwrap();
    // An older, world-readable key is replaced, not rewritten in place.
    fs::write(dir.path().join("key.pem"), "old").unwrap();
    fs::set_permissions(
        dir.path().join("key.pem"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let ca = Ca::generate("mesh CA").unwrap();
    ca.issue(&reviews(), DAY)
        .unwrap()
        .write(dir.path())
        .unwrap();
    assert_eq!(mode(&dir.path().join("key.pem")), 0o600);
    assert_eq!(mode(&dir.path().join("cert.pem")), 0o644);
    assert_eq!(mode(&dir.path().join("ca.pem")), 0o644);
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with(".."))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["ca.pem", "cert.pem", "key.pem"],
        "no temporary files left"
    );
}

/// The hidden entries of an identity directory: `..data` and the version directories.
fn versions(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("..") && name != "..data")
        .collect();
    names.sort();
    names
}

#[test]
fn an_identity_is_replaced_as_one_step_in_the_kubernetes_layout() {
    let (dir, ca) = identity_dir();
    let first = Identity::load(dir.path()).unwrap();
    for _ in 0..3 {
        ca.issue(&frontend(), DAY)
            .unwrap()
            .write(dir.path())
            .unwrap();
    }
    // Each name links through `..data`, which names one version directory; only the
    // current and the previous version are kept.
    for name in ["cert.pem", "key.pem", "ca.pem"] {
        assert_eq!(
            fs::read_link(dir.path().join(name)).unwrap(),
            Path::new("..data").join(name)
        );
    }
    let current = fs::read_link(dir.path().join("..data")).unwrap();
    let kept = versions(dir.path());
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&current.to_string_lossy().into_owned()));
    let loaded = Identity::load(dir.path()).unwrap();
    assert_eq!(loaded.spiffe_id(), &frontend());
    assert_ne!(first.spiffe_id(), loaded.spiffe_id());
}

#[test]
fn an_identity_loaded_while_it_is_rotated_is_never_a_mix_of_two() {
    let (dir, ca) = identity_dir();
    let issued: Vec<_> = (0..100)
        .map(|i| {
            let id = if i % 2 == 0 { frontend() } else { reviews() };
            ca.issue(&id, DAY).unwrap()
        })
        .collect();
    let path = dir.path().to_owned();
    let rotate = std::thread::spawn(move || {
        for identity in &issued {
            identity.write(&path).unwrap();
        }
    });
    // Load continuously while the writer swaps: a new key beside an old certificate would
    // be refused ("the key does not match the certificate").
    let mut loads = 0;
    while !rotate.is_finished() {
        if let Err(error) = Identity::load(dir.path()) {
            panic!("load {loads} saw a broken identity: {error}");
        }
        loads += 1;
    }
    rotate.join().unwrap();
    assert!(loads > 10, "only {loads} loads overlapped the rotations");
    assert!(versions(dir.path()).len() <= 2);
}

#[test]
fn plain_identity_files_are_taken_over_by_the_versioned_layout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("mesh CA").unwrap();
    let old = ca.issue(&reviews(), DAY).unwrap();
    fs::write(dir.path().join("cert.pem"), old.cert_pem()).unwrap();
    fs::write(dir.path().join("key.pem"), old.key_pem()).unwrap();
    fs::write(dir.path().join("ca.pem"), old.ca_pem()).unwrap();
    assert_eq!(Identity::load(dir.path()).unwrap().spiffe_id(), &reviews());
    ca.issue(&frontend(), DAY)
        .unwrap()
        .write(dir.path())
        .unwrap();
    assert!(
        fs::symlink_metadata(dir.path().join("key.pem"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(Identity::load(dir.path()).unwrap().spiffe_id(), &frontend());
}

#[test]
fn a_loaded_identity_knows_its_id_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("mesh CA").unwrap();
    let before = SystemTime::now();
    let issued = ca.issue(&frontend(), DAY).unwrap();
    issued.write(dir.path()).unwrap();
    let identity = Identity::load(dir.path()).unwrap();
    assert_eq!(identity.spiffe_id(), &frontend());
    let not_after = unix(identity.not_after());
    assert!((unix(before + DAY)..=unix(before + DAY) + 5).contains(&not_after));
    assert_eq!(not_after, unix(issued.not_after()));
    assert_eq!(identity.cert_chain().len(), 1);
    assert_eq!(identity.roots().len(), 1);
}

#[test]
fn an_issued_certificate_has_only_the_uri_san_and_workload_usages() {
    let ca = Ca::generate("mesh CA").unwrap();
    let now = SystemTime::now();
    let issued = ca.issue(&reviews(), Duration::from_secs(3600)).unwrap();
    let (_, pem) = parse_x509_pem(issued.cert_pem().as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();

    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        [GeneralName::URI(
            "spiffe://cluster.local/ns/bookinfo/sa/reviews"
        )]
    );
    assert!(san.critical, "the subject is empty, so the SAN is critical");
    assert_eq!(cert.subject().iter().count(), 0);

    let key_usage = cert.key_usage().unwrap().unwrap().value;
    assert!(key_usage.digital_signature());
    assert!(!key_usage.key_cert_sign() && !key_usage.key_encipherment());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.code_signing && !eku.any && eku.other.is_empty());
    assert!(!cert.is_ca());

    let (ca_pem_rest, ca_pem) = parse_x509_pem(ca.bundle_pem().as_bytes()).unwrap();
    assert!(ca_pem_rest.is_empty());
    assert_eq!(cert.issuer(), ca_pem.parse_x509().unwrap().subject());

    let not_before = cert.validity().not_before.timestamp();
    let skew = i64::try_from(mesh_identity::CLOCK_SKEW.as_secs()).unwrap();
    assert!((unix(now) - skew - 2..=unix(now) - skew + 2).contains(&not_before));
    let not_after = cert.validity().not_after.timestamp();
    assert!((unix(now) + 3600 - 2..=unix(now) + 3600 + 2).contains(&not_after));
}

#[test]
fn an_expired_certificate_is_refused_by_load_with_its_date() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("mesh CA").unwrap();
    let not_after = UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01T00:00:00Z
    ca.issue_with_validity(&reviews(), not_after - DAY, not_after)
        .unwrap()
        .write(dir.path())
        .unwrap();
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, IdentityError::Expired { path, not_after }
            if path == &dir.path().join("cert.pem") && not_after == "2025-01-01T00:00:00Z"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the certificate expired on 2025-01-01T00:00:00Z",
            dir.path().join("cert.pem").display()
        )
    );
}

#[test]
fn a_certificate_not_yet_valid_is_refused_by_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("mesh CA").unwrap();
    let now = SystemTime::now();
    ca.issue_with_validity(&reviews(), now + DAY, now + 2 * DAY)
        .unwrap()
        .write(dir.path())
        .unwrap();
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(error, IdentityError::NotYetValid { .. }),
        "{error:?}"
    );
}

#[test]
fn an_empty_validity_window_is_refused() {
    let ca = Ca::generate("mesh CA").unwrap();
    let now = SystemTime::now();
    let error = ca.issue_with_validity(&reviews(), now, now).unwrap_err();
    assert!(matches!(error, IdentityError::EmptyValidity), "{error:?}");
}

#[test]
fn a_certificate_from_another_ca_is_refused_by_load() {
    let (dir, _) = identity_dir();
    let other = Ca::generate("another CA").unwrap();
    fs::write(dir.path().join("ca.pem"), other.bundle_pem()).unwrap();
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, IdentityError::Untrusted { problem, .. } if problem == "it was issued by another CA"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("cert.pem is not trusted by the CA bundle"),
        "{message}"
    );
    assert!(
        message.contains("ca.pem: it was issued by another CA"),
        "{message}"
    );
}

#[test]
fn a_bundle_with_the_old_and_the_new_ca_trusts_both() {
    let (dir, ca) = identity_dir();
    let other = Ca::generate("next CA").unwrap();
    fs::write(
        dir.path().join("ca.pem"),
        format!("{}{}", other.bundle_pem(), ca.bundle_pem()),
    )
    .unwrap();
    let identity = Identity::load(dir.path()).unwrap();
    assert_eq!(identity.roots().len(), 2);
}

#[test]
fn a_missing_file_is_named() {
    for name in ["cert.pem", "key.pem", "ca.pem"] {
        let (dir, _) = identity_dir();
        let path = dir.path().join(name);
        fs::remove_file(&path).unwrap();
        let error = Identity::load(dir.path()).unwrap_err();
        assert!(
            matches!(&error, IdentityError::Missing { path: p } if p == &path),
            "{error:?}"
        );
        assert_eq!(error.to_string(), format!("{} is missing", path.display()));
    }
}

#[test]
fn malformed_pem_files_give_their_errors() {
    let pem_error = |name: &str, contents: &str| {
        let (dir, _) = identity_dir();
        fs::write(dir.path().join(name), contents).unwrap();
        (Identity::load(dir.path()).unwrap_err(), dir)
    };

    // Not PEM at all: no certificate in it.
    for name in ["cert.pem", "ca.pem"] {
        let (error, dir) = pem_error(name, "hello\n");
        assert!(
            matches!(&error, IdentityError::NoCertificate { path } if path == &dir.path().join(name)),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("holds no certificate"),
            "{error}"
        );
    }

    // A section without its end line.
    let (error, _) = pem_error("cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    assert!(
        matches!(&error, IdentityError::BadPem { problem, .. } if problem.contains("no end line")),
        "{error:?}"
    );

    // Bad base64.
    let (error, _) = pem_error(
        "cert.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    assert!(
        matches!(&error, IdentityError::BadPem { problem, .. } if problem.contains("base64")),
        "{error:?}"
    );

    // Good PEM, but not a certificate inside.
    let (error, _) = pem_error(
        "cert.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    );
    assert!(
        matches!(&error, IdentityError::BadCertificate { .. }),
        "{error:?}"
    );

    // A key file without a key: here it holds a certificate.
    let (dir, _) = identity_dir();
    fs::copy(dir.path().join("cert.pem"), dir.path().join("key.pem")).unwrap();
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, IdentityError::NoKey { path } if path == &dir.path().join("key.pem")),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("holds no private key"),
        "{error}"
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let (dir, ca) = identity_dir();
    let other = ca.issue(&reviews(), DAY).unwrap();
    fs::write(dir.path().join("key.pem"), other.key_pem()).unwrap();
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(error, IdentityError::KeyMismatch { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("is not the private key of the certificate in")
    );
}

/// A workload certificate with arbitrary SANs, made with rcgen directly by a CA that is
/// not a [`Ca`], written as an identity directory.
fn write_custom_identity(dir: &Path, sans: Vec<rcgen::SanType>) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose as Eku, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![Eku::ServerAuth, Eku::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
}

#[test]
fn a_certificate_without_exactly_one_spiffe_id_is_refused() {
    use rcgen::SanType;
    let uri = |s: &str| SanType::URI(s.try_into().unwrap());
    let dns = SanType::DnsName("reviews.bookinfo".try_into().unwrap());

    let dir = tempfile::tempdir().unwrap();
    write_custom_identity(dir.path(), vec![dns.clone()]);
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(error, IdentityError::NoSpiffeId { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("has no SPIFFE id"), "{error}");

    write_custom_identity(
        dir.path(),
        vec![
            uri("spiffe://cluster.local/ns/a/sa/b"),
            uri("spiffe://cluster.local/ns/a/sa/c"),
        ],
    );
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(error, IdentityError::SeveralUris { count: 2, .. }),
        "{error:?}"
    );

    write_custom_identity(dir.path(), vec![uri("https://reviews.bookinfo/")]);
    let error = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(&error, IdentityError::BadSpiffeId { source, .. }
            if source.kind() == &SpiffeIdErrorKind::MissingScheme),
        "{error:?}"
    );

    // A DNS name beside the SPIFFE id is allowed (the SPIFFE X.509 profile permits it).
    write_custom_identity(
        dir.path(),
        vec![dns, uri("spiffe://cluster.local/ns/a/sa/b")],
    );
    let identity = Identity::load(dir.path()).unwrap();
    assert_eq!(identity.spiffe_id().service_account(), "b");
}

#[test]
fn ca_load_refuses_a_wrong_key_and_a_non_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("mesh CA").unwrap();
    ca.write(dir.path()).unwrap();
    let other = Ca::generate("another CA").unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    other.write(other_dir.path()).unwrap();
    fs::copy(
        other_dir.path().join("ca-key.pem"),
        dir.path().join("ca-key.pem"),
    )
    .unwrap();
    let error = Ca::load(dir.path()).unwrap_err();
    assert!(
        matches!(error, IdentityError::KeyMismatch { .. }),
        "{error:?}"
    );

    let issued = ca.issue(&reviews(), DAY).unwrap();
    fs::write(dir.path().join("ca.pem"), issued.cert_pem()).unwrap();
    fs::write(dir.path().join("ca-key.pem"), issued.key_pem()).unwrap();
    let error = Ca::load(dir.path()).unwrap_err();
    assert!(matches!(error, IdentityError::NotACa { .. }), "{error:?}");

    fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
    fs::write(dir.path().join("ca.pem"), ca.bundle_pem()).unwrap();
    let error = Ca::load(dir.path()).unwrap_err();
    assert!(matches!(error, IdentityError::Missing { .. }), "{error:?}");
}

#[test]
fn peer_spiffe_id_is_none_without_a_usable_certificate() {
    assert_eq!(peer_spiffe_id(&[]), None);
    assert_eq!(
        peer_spiffe_id(&[CertificateDer::from(b"not DER".to_vec())]),
        None
    );
}
