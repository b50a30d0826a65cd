//! Rotating workload identities with cert-manager (`--issuer cert-manager`): instead of
//! identity Secrets that `meshc` issues for 90 days, a cert-manager `ClusterIssuer` backed
//! by the mesh CA, and one `Certificate` per identity that cert-manager keeps renewed in
//! the Secret the agents already mount (`NAME-mesh-identity`, keys `tls.crt`, `tls.key`,
//! `ca.crt`). Certificates last [`DURATION`] and are renewed [`RENEW_BEFORE`] before they
//! expire, with a new key each time; the agents reload a renewed Secret volume without
//! dropping a request (`agent/proxy/tests/mtls.rs`,
//! `rotating_certificates_under_load_fails_no_request`).
//!
//! The types hold the fields of `cert-manager.io/v1` this crate sets, named as
//! cert-manager documents them; unknown fields are refused when reading one back.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::certs;
use crate::input::MeshInput;
use crate::labels::{self, sha256_hex};
use crate::object::Object;

/// The API version of cert-manager's resources.
pub const API_VERSION: &str = "cert-manager.io/v1";
/// The API group.
pub const GROUP: &str = "cert-manager.io";
/// How long a workload certificate is valid (Istio and Linkerd issue for 24 hours).
pub const DURATION: &str = "24h";
/// How long before expiry it is renewed: a third of its life left.
pub const RENEW_BEFORE: &str = "8h";
/// The namespace cert-manager reads a `ClusterIssuer`'s CA Secret from (its "cluster
/// resource namespace") unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "cert-manager";

/// A `ClusterIssuer` (`cert-manager.io/v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterIssuer {
    /// `cert-manager.io/v1`.
    pub api_version: String,
    /// `ClusterIssuer`.
    pub kind: String,
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// What it issues with.
    pub spec: IssuerSpec,
}

/// The issuer's spec: a CA issuer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerSpec {
    /// Sign with a CA held in a Secret.
    pub ca: CaIssuer,
}

/// `spec.ca`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaIssuer {
    /// The Secret (`tls.crt`, `tls.key`) holding the CA.
    pub secret_name: String,
}

/// A `Certificate` (`cert-manager.io/v1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// `cert-manager.io/v1`.
    pub api_version: String,
    /// `Certificate`.
    pub kind: String,
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// What to issue.
    pub spec: CertificateSpec,
}

/// A Certificate's spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSpec {
    /// The Secret cert-manager writes (`tls.crt`, `tls.key`, `ca.crt`).
    pub secret_name: String,
    /// Who signs it.
    pub issuer_ref: IssuerRef,
    /// URI subject alternative names: the SPIFFE id.
    pub uris: Vec<String>,
    /// Validity (a Go duration).
    pub duration: String,
    /// How long before expiry to renew.
    pub renew_before: String,
    /// The key.
    pub private_key: PrivateKey,
    /// Key usages.
    pub usages: Vec<String>,
}

/// `spec.issuerRef`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRef {
    /// The issuer's name.
    pub name: String,
    /// `ClusterIssuer`.
    pub kind: String,
    /// `cert-manager.io`.
    pub group: String,
}

/// `spec.privateKey`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivateKey {
    /// `ECDSA`.
    pub algorithm: String,
    /// 256 (P-256, as the mesh CA issues).
    pub size: u32,
    /// `PKCS8`.
    pub encoding: String,
    /// `Always`: a new key at every renewal.
    pub rotation_policy: String,
}

/// The mesh CA's certificate and key, PEM, for the issuer's Secret.
#[derive(Clone, Debug)]
pub struct CaFiles {
    /// The CA certificate (bundle).
    pub cert: Vec<u8>,
    /// Its private key.
    pub key: Vec<u8>,
}

/// The name of mesh `mesh`'s `ClusterIssuer` and of its CA Secret.
pub fn issuer_name(mesh: &str) -> String {
    format!("meshc-{mesh}-ca")
}

/// The issuer's CA Secret (in `namespace`, cert-manager's cluster resource namespace), the
/// `ClusterIssuer`, and a `Certificate` per identity of `mesh`.
pub fn objects(mesh: &MeshInput, ca: &CaFiles, namespace: &str) -> Vec<Object> {
    let name = issuer_name(&mesh.name);
    let mut objects = vec![
        Object::Secret(Secret {
            metadata: labels::meta(&mesh.name, Some(namespace), &name, sha256_hex(&ca.cert)),
            type_: Some("kubernetes.io/tls".to_string()),
            data: Some(BTreeMap::from([
                (certs::CERT_KEY.to_string(), ByteString(ca.cert.clone())),
                (certs::KEY_KEY.to_string(), ByteString(ca.key.clone())),
            ])),
            ..Secret::default()
        }),
        Object::ClusterIssuer(Box::new(ClusterIssuer {
            api_version: API_VERSION.to_string(),
            kind: "ClusterIssuer".to_string(),
            metadata: labels::meta(&mesh.name, None, &name, String::new()),
            spec: IssuerSpec {
                ca: CaIssuer {
                    secret_name: name.clone(),
                },
            },
        })),
    ];
    for (namespace, sa, spiffe_id) in mesh.identities() {
        let secret = labels::secret_name(&sa);
        objects.push(Object::Certificate(Box::new(Certificate {
            api_version: API_VERSION.to_string(),
            kind: "Certificate".to_string(),
            metadata: labels::meta(
                &mesh.name,
                Some(&namespace),
                &secret,
                sha256_hex(spiffe_id.as_bytes()),
            ),
            spec: CertificateSpec {
                secret_name: secret,
                issuer_ref: IssuerRef {
                    name: name.clone(),
                    kind: "ClusterIssuer".to_string(),
                    group: GROUP.to_string(),
                },
                uris: vec![spiffe_id],
                duration: DURATION.to_string(),
                renew_before: RENEW_BEFORE.to_string(),
                private_key: PrivateKey {
                    algorithm: "ECDSA".to_string(),
                    size: 256,
                    encoding: "PKCS8".to_string(),
                    rotation_policy: "Always".to_string(),
                },
                usages: ["digital signature", "server auth", "client auth"]
                    .map(str::to_string)
                    .to_vec(),
            },
        })));
    }
    objects
}
