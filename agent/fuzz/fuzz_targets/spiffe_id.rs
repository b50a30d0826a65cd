//! Any string as a SPIFFE id, as the agent reads it from a peer's certificate: the one
//! parser (`mesh-vocab`, re-exported by `mesh-identity` and `mesh-config`) never panics, an
//! accepted id prints back to itself, and authorization names a principal exactly for the
//! ids it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_identity::SpiffeId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = SpiffeId::parse(text);
    if let Ok(id) = &parsed {
        let printed = id.to_string();
        assert_eq!(
            SpiffeId::parse(&printed).ok().as_ref(),
            Some(id),
            "{printed}"
        );
    }
    let peer = mesh_config::Peer::from_spiffe_id(text, "cluster.local");
    assert_eq!(peer.identity.as_deref(), Some(text));
    if let Ok(id) = &parsed {
        let (domain, ns, sa) = (id.trust_domain(), id.namespace(), id.service_account());
        assert!(text.contains(domain) && text.contains(ns) && text.contains(sa));
    }
});
