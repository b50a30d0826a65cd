//! Any bytes as an HTTP/1 request head that the agent's parser (httparse, as hyper uses
//! it) accepts: the agent's own head handling — the authority, hop-by-hop stripping, the
//! routing view with its percent-decoding and query parsing — and the bookinfo
//! productpage config's routing and Cedar authorization never panic on it.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mesh_agent::http::{View, authority, strip_hop_by_hop};
use mesh_config::{Config, Peer};

static CONFIG: LazyLock<Option<Config>> =
    LazyLock::new(|| Config::from_json(include_bytes!("../fixtures/productpage.json")).ok());

fuzz_target!(|data: &[u8]| {
    let Some(config) = CONFIG.as_ref() else {
        panic!("the fixture config does not load");
    };
    let mut fields = [httparse::EMPTY_HEADER; 100];
    let mut head = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(_)) = head.parse(data) else {
        return;
    };
    let mut builder = http::Request::builder()
        .method(head.method.unwrap_or("GET"))
        .uri(head.path.unwrap_or("/"));
    for field in head.headers.iter() {
        builder = builder.header(field.name, field.value);
    }
    let Ok(mut request) = builder.body(()) else {
        return;
    };
    strip_hop_by_hop(request.headers_mut());
    let host = authority(&request).unwrap_or("").to_string();
    let view = View::new(&request, &host, 9080);
    if let Some(service) = config.service_for_authority(&host) {
        let _ = config.route(service, &view, 12_345);
    }
    let _ = config.forbidden_mesh_namespace(&host);
    let peer = Peer::from_spiffe_id(
        "spiffe://cluster.local/ns/bookinfo/sa/gateway",
        "cluster.local",
    );
    let _ = config.authorize(&view, &peer);
});
