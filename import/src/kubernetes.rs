//! The application's own Kubernetes objects, read for what a `service` declaration needs:
//! a Service's ports (protocol from `appProtocol` or Istio's port-name convention) and
//! selector, a Deployment's service account (the identity of the pods labelled
//! `app: SERVICE`). Everything else in them is how the application runs, which the
//! mesh does not describe, so it is not reported.

use crate::lit;
use crate::model::Mesh;
use crate::object::{Object, entry};
use crate::yaml::{Node, Value};

/// Declares the service a Kubernetes Service describes, with its ports and labels.
pub fn service(obj: &Object<'_>, mesh: &mut Mesh) {
    if !lit::is_ident(&obj.name) {
        return;
    }
    let why = format!("Service {} ({})", obj.name, obj.namespace);
    let service = mesh.service(&obj.namespace, &obj.name, &format!("from {why}"));
    let Some(spec) = obj.spec else { return };
    if let Some(Value::Seq(ports)) = entry(spec, "ports").map(|n| &n.value) {
        for port in ports {
            let number = entry(port, "port")
                .and_then(|n| match n.value {
                    Value::Int(i) => u16::try_from(i).ok(),
                    _ => None,
                })
                .filter(|n| *n > 0);
            let protocol = text(port, "protocol").unwrap_or_else(|| "TCP".to_string());
            if let Some(number) = number
                && protocol == "TCP"
            {
                service.ports.entry(number).or_insert(port_protocol(port));
            }
        }
    }
    if let Some(selector) = entry(spec, "selector")
        && let Value::Map(labels) = &selector.value
    {
        let labels: Vec<(String, String)> = labels
            .iter()
            .filter_map(|(k, v)| Some((k.scalar_text()?, v.scalar_text()?)))
            .collect();
        let default = labels.len() == 1
            && labels
                .first()
                .is_some_and(|(k, v)| k == "app" && *v == obj.name);
        if !default && labels.iter().all(|(k, _)| lit::is_ident(k)) && !labels.is_empty() {
            service.labels = labels;
        }
    }
}

/// The protocol of a Service port: `appProtocol`, else the prefix of its name as Istio
/// reads it (`http`, `http2`, `grpc`, `tcp`, `mongo`, …), else `http`.
fn port_protocol(port: &Node) -> &'static str {
    let hint = text(port, "appProtocol")
        .or_else(|| text(port, "name"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let prefix = hint.split(['-', '_']).next().unwrap_or_default();
    match prefix {
        "http2" | "kubernetes.io/h2c" => "http2",
        "grpc" | "grpc-web" => "grpc",
        "tcp" | "mongo" | "mysql" | "redis" | "tls" | "https" => "tcp",
        _ => "http",
    }
}

/// Gives the service whose pods a Deployment runs (its template's `app` label) the
/// Deployment's service account as identity.
pub fn deployment(obj: &Object<'_>, mesh: &mut Mesh) {
    let Some(spec) = obj.spec else { return };
    let Some(template) = entry(spec, "template") else {
        return;
    };
    let app = entry(template, "metadata")
        .and_then(|m| entry(m, "labels"))
        .and_then(|l| text(l, "app"));
    let account = entry(template, "spec").and_then(|s| text(s, "serviceAccountName"));
    if let (Some(app), Some(account)) = (app, account)
        && lit::is_ident(&app)
        && lit::is_ident(&account)
        && let Some(service) = mesh
            .namespaces
            .get_mut(&obj.namespace)
            .and_then(|n| n.services.get_mut(&app))
        && account != app
    {
        service.identity = Some(account);
    }
}

fn text(node: &Node, key: &str) -> Option<String> {
    entry(node, key).and_then(Node::scalar_text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use crate::{Input, import};

    #[test]
    fn service_ports_take_their_protocol_from_app_protocol_or_name() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: shop, namespace: web}\nspec:\n  selector: {app: shop, tier: web}\n  ports:\n  - {port: 80, name: http-web}\n  - {port: 9090, name: grpc-api}\n  - {port: 27017, name: mongo}\n  - {port: 8443, appProtocol: kubernetes.io/h2c}\n  - {port: 53, protocol: UDP}\n";
        let out = import(&[Input::new("s.yaml", yaml)]).unwrap();
        assert!(out.diagnostics.concat().is_empty());
        let mesh = out.mesh.unwrap();
        for line in [
            "port http 80",
            "port grpc 9090",
            "port tcp 27017",
            "port http2 8443",
            "labels { app = \"shop\", tier = \"web\" }",
        ] {
            assert!(mesh.contains(line), "{line}\n{mesh}");
        }
        assert!(!mesh.contains("53"), "{mesh}");
    }
}
