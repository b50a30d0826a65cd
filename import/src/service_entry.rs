//! Istio ServiceEntry → `service`. The language has no external services, so a
//! MESH_EXTERNAL entry (the default) is reported whole; a MESH_INTERNAL one declares its
//! hosts as services with its ports, and what says where the endpoints are (the mesh
//! discovers them itself) is reported.

use crate::lit;
use crate::model::Mesh;
use crate::object::Object;

/// Translates one ServiceEntry into `mesh`.
pub fn translate(obj: &Object<'_>, mesh: &mut Mesh) {
    let spec = obj.spec();
    let Some(f) = spec.fields() else { return };
    let location = f.take("location");
    let internal = location
        .as_ref()
        .and_then(|l| l.at().str())
        .is_some_and(|l| l == "MESH_INTERNAL");
    if !internal {
        let at = location.as_ref().map_or(&spec, |l| l.at());
        at.not_expressible(
            "external services (MESH_EXTERNAL, the default location) are not expressible: \
             the language routes and authorizes only between its own services",
        );
        for key in [
            "hosts",
            "ports",
            "resolution",
            "endpoints",
            "addresses",
            "workloadSelector",
            "exportTo",
            "subjectAltNames",
        ] {
            f.skip(key);
        }
        return;
    }
    let mut ports = Vec::new();
    if let Some(p) = f.take("ports") {
        for item in p.at().items() {
            let Some(pf) = item.at().fields() else {
                continue;
            };
            let number = pf
                .take("number")
                .and_then(|n| n.at().int())
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0);
            pf.skip("name");
            pf.not_expressible("targetPort", "a target port is not expressible");
            let protocol = pf.take("protocol");
            let proto = match protocol.as_ref().and_then(|p| p.at().str()).as_deref() {
                None | Some("HTTP") => Some("http"),
                Some("HTTP2") => Some("http2"),
                Some("GRPC") => Some("grpc"),
                Some("TCP") | Some("MONGO") | Some("MYSQL") | Some("REDIS") => Some("tcp"),
                Some(other) => {
                    if let Some(p) = &protocol {
                        p.at().not_expressible(&format!(
                            "protocol {other} is not expressible (http, http2, grpc, tcp)"
                        ));
                    }
                    None
                }
            };
            if let (Some(n), Some(proto)) = (number, proto) {
                ports.push((n, proto));
            }
        }
    }
    if let Some(h) = f.take("hosts") {
        for (host, item) in h.at().strings() {
            match lit::service_host(&host, &obj.namespace) {
                Some((ns, name)) => {
                    let why = format!("a host of ServiceEntry {} ({})", obj.name, obj.namespace);
                    let service = mesh.service(&ns, &name, &crate::declared(&why));
                    for (n, proto) in &ports {
                        service.ports.entry(*n).or_insert(proto);
                    }
                }
                None => item.at().not_expressible(&format!(
                    "host {host:?} is not expressible as a service name"
                )),
            }
        }
    }
    for key in ["resolution", "endpoints", "addresses", "workloadSelector"] {
        f.not_expressible(
            key,
            "where the endpoints are is not expressible: the mesh discovers them itself",
        );
    }
    f.not_expressible("exportTo", "the language has no visibility scopes");
    f.not_expressible("subjectAltNames", "the mesh verifies its own identities");
}
