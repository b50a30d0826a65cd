//! Any bytes as a workload config: `Config::from_json` refuses or accepts without
//! panicking, and an accepted config routes, routes connections and authorizes a request
//! to every one of its services without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_config::{Config, Peer, SimpleRequest};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::from_json(data) else {
        return;
    };
    let request = SimpleRequest::new("GET", "/a/b?c=d", "host")
        .header("end-user", "jason")
        .on_port(8080);
    let trust_domain = config.source().mesh.trust_domain.clone();
    let peer = Peer::from_spiffe_id(
        &format!("spiffe://{trust_domain}/ns/ns/sa/sa"),
        &trust_domain,
    );
    for service in 0..config.source().outbound.services.len() {
        let _ = config.route(service, &request, 0);
        let _ = config.route(service, &request, 99_999);
        let _ = config.route_connection(service, 50_000);
    }
    let _ = config.authorize(&request, &peer);
    let _ = config.authorize(&request, &Peer::anonymous());
    let _ = config.authorize_connection(8080, &peer);
});
