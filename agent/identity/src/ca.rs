//! The mesh certificate authority: `meshc` creates one, keeps it in a directory, and issues
//! each workload a short-lived certificate whose only name is its SPIFFE id.
//!
//! Keys are ECDSA P-256, generated and signed with rcgen on ring. The CA may sign workload
//! certificates only (path length 0): there are no intermediates.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
};
use time::OffsetDateTime;

use crate::error::IdentityError;
use crate::files;
use crate::x509;
use mesh_vocab::SpiffeId;

/// How far in the past certificates start, so that a peer whose clock is a little behind
/// accepts a certificate issued a moment ago.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// How long a CA made by [`Ca::generate`] is valid: ten years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// The CA certificate file in a CA directory, and the CA bundle in an identity directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key file in a CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The workload certificate file in an identity directory.
pub const CERT_FILE: &str = "cert.pem";
/// The workload private key file in an identity directory (mode 0600).
pub const KEY_FILE: &str = "key.pem";

/// A mesh CA: its certificate and the key that signs workload certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The contents of `ca.pem`: this CA's certificate first, then any others trusted
    /// alongside it (during a rotation). Issued certificates carry it as their bundle.
    bundle_pem: String,
    key_pem: String,
    not_after: SystemTime,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Ca")
            .field("issuer", &self.issuer)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A workload certificate just issued, with its key and the CA bundle that verifies it.
pub struct Issued {
    spiffe_id: SpiffeId,
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Issued")
            .field("spiffe_id", &self.spiffe_id.to_string())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA named `common_name`, valid from a little in the past
    /// ([`CLOCK_SKEW`]) for [`CA_VALIDITY`].
    pub fn generate(common_name: &str) -> Result<Ca, IdentityError> {
        let now = SystemTime::now();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            IdentityError::Generate {
                what: "the CA key".into(),
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
        let not_after = now.checked_add(CA_VALIDITY).unwrap_or(now);
        params.not_before = offset_date_time(not_before)?;
        params.not_after = offset_date_time(not_after)?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| IdentityError::Generate {
                what: format!("the CA certificate {common_name:?}"),
                source,
            })?;
        Ok(Ca {
            bundle_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// Loads a CA from `dir/ca.pem` and `dir/ca-key.pem`.
    ///
    /// The first certificate of `ca.pem` must be a CA, currently valid, whose key is in
    /// `ca-key.pem`; any further certificates are kept in the bundle given to workloads.
    pub fn load(dir: &Path) -> Result<Ca, IdentityError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let bundle = files::read(&cert_path)?;
        let certs = files::certificates(&cert_path, &bundle)?;
        let ca_der = &certs[0];
        let ca_cert = x509::parse(&cert_path, ca_der)?;
        if !ca_cert.is_ca() {
            return Err(IdentityError::NotACa { path: cert_path });
        }
        x509::check_validity(&cert_path, &ca_cert, SystemTime::now())?;

        let key_bytes = files::read(&key_path)?;
        let key_der = files::private_key(&key_path, &key_bytes)?;
        let key = KeyPair::try_from(&key_der).map_err(|e| IdentityError::BadKey {
            path: key_path.clone(),
            problem: e.to_string(),
        })?;
        if key.subject_public_key_info() != ca_cert.public_key().raw {
            return Err(IdentityError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let not_after = x509::system_time(ca_cert.validity().not_after);
        let bundle_pem = String::from_utf8(bundle).map_err(|_| IdentityError::BadPem {
            path: cert_path.clone(),
            problem: "it is not UTF-8 text".into(),
        })?;
        let key_pem = key.serialize_pem();
        let issuer =
            Issuer::from_ca_cert_der(ca_der, key).map_err(|e| IdentityError::BadCertificate {
                path: cert_path.clone(),
                problem: e.to_string(),
            })?;
        Ok(Ca {
            issuer,
            bundle_pem,
            key_pem,
            not_after,
        })
    }

    /// Writes `dir/ca.pem` and `dir/ca-key.pem` (mode 0600), creating `dir` if needed and
    /// replacing any CA already there.
    pub fn write(&self, dir: &Path) -> Result<(), IdentityError> {
        files::create_dir(dir)?;
        files::write_atomic(
            &dir.join(CA_KEY_FILE),
            self.key_pem.as_bytes(),
            files::PRIVATE_MODE,
        )?;
        files::write_atomic(
            &dir.join(CA_CERT_FILE),
            self.bundle_pem.as_bytes(),
            files::PUBLIC_MODE,
        )
    }

    /// The CA bundle, PEM: what workloads trust.
    pub fn bundle_pem(&self) -> &str {
        &self.bundle_pem
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Issues `id` a certificate valid from a little in the past ([`CLOCK_SKEW`]) until
    /// `ttl` from now.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Result<Issued, IdentityError> {
        let now = SystemTime::now();
        let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
        let not_after = now.checked_add(ttl).ok_or(IdentityError::TimeOutOfRange)?;
        self.issue_with_validity(id, not_before, not_after)
    }

    /// Issues `id` a certificate valid from `not_before` to `not_after` (to the second),
    /// which may be in the past: tests use it to make expired certificates.
    ///
    /// The certificate has a fresh P-256 key, an empty subject, the SPIFFE id as its only
    /// subject alternative name (a URI, marked critical as the subject is empty),
    /// `CA:FALSE`, key usage digitalSignature, and extended key usages serverAuth and
    /// clientAuth, since every workload is both.
    pub fn issue_with_validity(
        &self,
        id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued, IdentityError> {
        if not_before >= not_after {
            return Err(IdentityError::EmptyValidity);
        }
        let generate = |what: &str| {
            let what = format!("{what} for {id}");
            move |source| IdentityError::Generate { what, source }
        };
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate("the workload key"))?;
        let uri = id.to_string().try_into().map_err(generate("the URI SAN"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = offset_date_time(not_before)?;
        params.not_after = offset_date_time(not_after)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate("the workload certificate"))?;
        Ok(Issued {
            spiffe_id: id.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.bundle_pem.clone(),
            not_before,
            not_after,
        })
    }
}

/// A certificate for a server reached by DNS name (an admission webhook behind its
/// Kubernetes Service): not a workload identity, so no SPIFFE id.
#[derive(Clone, Debug)]
pub struct ServingCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl Ca {
    /// Issues a server certificate for `dns_names` valid from [`CLOCK_SKEW`] ago until
    /// `ttl` from now: a fresh P-256 key, the names as DNS subject alternative names (the
    /// first also as common name), `CA:FALSE`, extended key usage serverAuth only.
    pub fn issue_serving(
        &self,
        dns_names: &[String],
        ttl: Duration,
    ) -> Result<ServingCert, IdentityError> {
        let what = dns_names.first().cloned().unwrap_or_default();
        let generate = |part: &str| {
            let what = format!("{part} for {what}");
            move |source| IdentityError::Generate { what, source }
        };
        let now = SystemTime::now();
        let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
        let not_after = now.checked_add(ttl).ok_or(IdentityError::TimeOutOfRange)?;
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate("the server key"))?;
        let mut params =
            CertificateParams::new(dns_names.to_vec()).map_err(generate("the DNS names"))?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, what.clone());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = offset_date_time(not_before)?;
        params.not_after = offset_date_time(not_after)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate("the server certificate"))?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Issued {
    /// Writes `dir/cert.pem`, `dir/key.pem` (mode 0600) and `dir/ca.pem` (the bundle),
    /// creating `dir` if needed: what [`crate::Identity::load`] reads.
    ///
    /// The three are replaced as one step (a new version directory, then one rename of
    /// the `..data` link, as Kubernetes updates a mounted Secret), so a watcher reloading
    /// at any moment reads a matching certificate and key.
    pub fn write(&self, dir: &Path) -> Result<(), IdentityError> {
        files::write_versioned(
            dir,
            &[
                (KEY_FILE, self.key_pem.as_bytes(), files::PRIVATE_MODE),
                (CA_CERT_FILE, self.ca_pem.as_bytes(), files::PUBLIC_MODE),
                (CERT_FILE, self.cert_pem.as_bytes(), files::PUBLIC_MODE),
            ],
        )
    }

    /// Whose certificate it is.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA bundle, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// When the certificate starts being valid (to the second).
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// When the certificate expires (to the second).
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }
}

fn offset_date_time(time: SystemTime) -> Result<OffsetDateTime, IdentityError> {
    OffsetDateTime::from_unix_timestamp(x509::unix_seconds(time))
        .map_err(|_| IdentityError::TimeOutOfRange)
}
