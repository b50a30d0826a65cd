//! The certificate in each identity's Secret: issued from the mesh CA, and kept as it is
//! while it is still good, so that producing the objects again gives the same bytes and
//! re-applying them changes nothing. A certificate is replaced when it was issued by
//! another CA, names another identity, does not match its key, or has less than a third
//! of its lifetime left.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use mesh_identity::{Ca, Identity, SpiffeId};

use crate::error::KubeError;

/// The Secret key of the certificate (the `kubernetes.io/tls` convention).
pub const CERT_KEY: &str = "tls.crt";
/// The Secret key of the private key.
pub const KEY_KEY: &str = "tls.key";
/// The Secret key of the CA bundle.
pub const CA_KEY: &str = "ca.crt";

/// How long certificates issued for Secrets are valid: re-running `meshc apply` (or
/// `meshc manifests -o DIR`) renews those past two thirds of it.
pub const SECRET_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// A certificate, its key and the CA bundle, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsData {
    /// The certificate.
    pub cert: Vec<u8>,
    /// The private key.
    pub key: Vec<u8>,
    /// The CA bundle.
    pub ca: Vec<u8>,
}

impl TlsData {
    /// The data of a Secret that holds all three keys.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Option<TlsData> {
        Some(TlsData {
            cert: data.get(CERT_KEY)?.0.clone(),
            key: data.get(KEY_KEY)?.0.clone(),
            ca: data.get(CA_KEY)?.0.clone(),
        })
    }

    /// As Secret data.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        BTreeMap::from([
            (CA_KEY.to_string(), ByteString(self.ca.clone())),
            (CERT_KEY.to_string(), ByteString(self.cert.clone())),
            (KEY_KEY.to_string(), ByteString(self.key.clone())),
        ])
    }
}

/// Issues certificates from the mesh CA, reusing good ones.
pub struct Issuer<'a> {
    ca: &'a Ca,
    ttl: Duration,
}

impl<'a> Issuer<'a> {
    /// Issues from `ca` certificates valid for `ttl`.
    pub fn new(ca: &'a Ca, ttl: Duration) -> Issuer<'a> {
        Issuer { ca, ttl }
    }

    /// The certificate of `id`: `existing` when it is still good, a new one otherwise.
    pub fn certificate(&self, id: &str, existing: Option<&TlsData>) -> Result<TlsData, KubeError> {
        let spiffe_id = SpiffeId::parse(id).map_err(|source| KubeError::SpiffeId {
            id: id.to_string(),
            source,
        })?;
        if let Some(existing) = existing
            && self.reusable(existing, &spiffe_id, SystemTime::now())
        {
            return Ok(existing.clone());
        }
        let issued = self
            .ca
            .issue(&spiffe_id, self.ttl)
            .map_err(|source| KubeError::Issue {
                id: id.to_string(),
                source,
            })?;
        Ok(TlsData {
            cert: issued.cert_pem().as_bytes().to_vec(),
            key: issued.key_pem().as_bytes().to_vec(),
            ca: issued.ca_pem().as_bytes().to_vec(),
        })
    }

    /// Whether `existing` is a certificate of `id` from this CA with at least a third of
    /// its lifetime left at `now`.
    pub fn reusable(&self, existing: &TlsData, id: &SpiffeId, now: SystemTime) -> bool {
        if existing.ca != self.ca.bundle_pem().as_bytes() {
            return false;
        }
        let Ok(identity) = Identity::from_pem_at(&existing.cert, &existing.key, &existing.ca, now)
        else {
            return false;
        };
        identity.spiffe_id() == id
            && identity
                .not_after()
                .duration_since(now)
                .is_ok_and(|left| left > self.ttl / 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_good_certificates_and_replaces_others() {
        let ca = Ca::generate("test CA").unwrap();
        let other = Ca::generate("other CA").unwrap();
        let issuer = Issuer::new(&ca, Duration::from_secs(3600));
        let id = "spiffe://cluster.local/ns/shop/sa/cart";
        let first = issuer.certificate(id, None).unwrap();
        assert_eq!(issuer.certificate(id, Some(&first)).unwrap(), first);

        let other_id = "spiffe://cluster.local/ns/shop/sa/web";
        assert_ne!(issuer.certificate(other_id, Some(&first)).unwrap(), first);

        let foreign = Issuer::new(&other, Duration::from_secs(3600))
            .certificate(id, None)
            .unwrap();
        assert_ne!(issuer.certificate(id, Some(&foreign)).unwrap(), foreign);

        let parsed = SpiffeId::parse(id).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3000);
        assert!(issuer.reusable(&first, &parsed, SystemTime::now()));
        assert!(!issuer.reusable(&first, &parsed, later), "near expiry");

        let mut wrong_key = first.clone();
        wrong_key.key = foreign.key.clone();
        assert!(!issuer.reusable(&wrong_key, &parsed, SystemTime::now()));
    }
}
