//! Any string as a SPIFFE id, as the agent reads it from a peer's certificate: the strict
//! parser (`mesh-identity`) and the authorization one (`mesh-config`) never panic, an
//! accepted id prints back to itself, and the two parsers agree on the mesh form.
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
    if let Some((domain, ns, sa)) = mesh_config::parse_spiffe_id(text) {
        assert!(text.contains(domain) && text.contains(ns) && text.contains(sa));
    }
});
