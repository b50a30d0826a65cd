//! Istio and Gateway API YAML to `.mesh`: the library behind `meshc import`.
//!
//! [`import`] reads YAML streams (VirtualService, DestinationRule, AuthorizationPolicy,
//! PeerAuthentication, ServiceEntry; HTTPRoute and GRPCRoute of the GAMMA mesh profile)
//! and returns the mesh they describe as formatted `.mesh` text, with a diagnostic for
//! every field the language cannot express. Pure: no I/O, no async runtime.
//!
//! ```
//! let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
//! let out = mesh_import::import(&[mesh_import::Input::new("vs.yaml", yaml)]).unwrap();
//! assert!(out.mesh.unwrap().contains("route reviews {"));
//! assert!(out.diagnostics.iter().all(Vec::is_empty));
//! ```

mod authorization;
mod destination_rule;
pub mod diag;
mod fields;
mod gateway_api;
mod kubernetes;
mod lit;
mod model;
mod object;
mod peer_authentication;
mod render;
mod routing;
mod service_entry;
mod virtual_service;
pub mod yaml;

use std::cell::RefCell;

use mesh_lang::{Diagnostic, Severity};

use crate::model::Mesh;
use crate::object::{Kind, Object};

/// One YAML stream and the name diagnostics call it by.
#[derive(Clone, Debug)]
pub struct Input {
    /// A file path, or `stdin`.
    pub name: String,
    /// Its text.
    pub text: String,
}

impl Input {
    /// The stream `text` called `name`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Input {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// What an import produced.
#[derive(Debug)]
pub struct Outcome {
    /// The formatted `.mesh` text; `None` when an input had errors (malformed YAML, an
    /// unknown kind), in which case nothing should be written.
    pub mesh: Option<String>,
    /// The diagnostics of each input, in input order, with spans into its text.
    pub diagnostics: Vec<Vec<Diagnostic>>,
}

impl Outcome {
    /// Whether every field of every input was expressed.
    pub fn complete(&self) -> bool {
        self.mesh.is_some() && self.diagnostics.iter().all(Vec::is_empty)
    }
}

/// A failure of the import itself.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The text made from the YAML is not valid `.mesh`: a bug of the import.
    #[error("the generated mesh does not parse (a bug of meshc import): {0}")]
    Generated(String),
}

/// The comment of a service the YAML names but does not define.
fn declared(why: &str) -> String {
    format!("declared by meshc import for {why}: complete its ports, identity and labels")
}

/// Imports `inputs` into one mesh.
pub fn import(inputs: &[Input]) -> Result<Outcome, ImportError> {
    let sinks: Vec<RefCell<Vec<Diagnostic>>> =
        inputs.iter().map(|_| RefCell::new(Vec::new())).collect();
    let mut docs = Vec::with_capacity(inputs.len());
    for (input, sink) in inputs.iter().zip(&sinks) {
        match yaml::parse_stream(&input.text) {
            Ok(parsed) => docs.push(parsed),
            Err(err) => {
                let at = mesh_lang::ast::Span::new(err.offset, err.offset);
                sink.borrow_mut().push(Diagnostic::error(
                    diag::MALFORMED,
                    format!("{}: not YAML: {}", input.name, err.message),
                    at,
                    "here",
                ));
                docs.push(Vec::new());
            }
        }
    }
    let objects: Vec<Object<'_>> = docs
        .iter()
        .zip(&sinks)
        .flat_map(|(d, sink)| object::objects(d, sink))
        .collect();
    let failed = sinks
        .iter()
        .any(|s| s.borrow().iter().any(|d| d.severity == Severity::Error));
    let mesh = if failed {
        None
    } else {
        Some(translate(&objects, inputs)?)
    };
    drop(objects);
    Ok(Outcome {
        mesh,
        diagnostics: sinks
            .into_iter()
            .map(|sink| {
                let mut diagnostics = sink.into_inner();
                diagnostics.sort_by_key(|d| d.span.start);
                diagnostics
            })
            .collect(),
    })
}

/// Translates the objects in dependency order — mTLS mode and service definitions first,
/// then routes, then policies (which need every service) — and prints the result.
fn translate(objects: &[Object<'_>], inputs: &[Input]) -> Result<String, ImportError> {
    let mut mesh = Mesh::default();
    let of = |kind: Kind| objects.iter().filter(move |o| o.kind == kind);
    for obj in of(Kind::KubeService) {
        kubernetes::service(obj, &mut mesh);
    }
    let (wide, narrow): (Vec<_>, Vec<_>) =
        of(Kind::PeerAuthentication).partition(|o| peer_authentication::is_mesh_wide(o));
    for obj in wide.into_iter().chain(narrow) {
        peer_authentication::translate(obj, &mut mesh);
    }
    for obj in of(Kind::ServiceEntry) {
        service_entry::translate(obj, &mut mesh);
    }
    for obj in of(Kind::DestinationRule) {
        destination_rule::translate(obj, &mut mesh);
    }
    let mut gamma = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        match obj.kind {
            Kind::VirtualService => virtual_service::translate(obj, &mut mesh),
            Kind::HttpRoute => gateway_api::collect_http(obj, i, &mut mesh, &mut gamma),
            Kind::GrpcRoute => gateway_api::collect_grpc(obj, i, &mut mesh, &mut gamma),
            _ => {}
        }
    }
    gateway_api::finish(&mut mesh, gamma);
    for obj in of(Kind::Deployment) {
        kubernetes::deployment(obj, &mut mesh);
    }
    let parts: Vec<_> = of(Kind::AuthorizationPolicy)
        .filter_map(|o| authorization::translate(o, &mut mesh))
        .collect();
    let notes = authorization::assemble(&mut mesh, &parts);
    for obj in of(Kind::Other) {
        obj.ctx.report(
            diag::NOT_EXPRESSIBLE,
            obj.node.span,
            "",
            "this kind has no equivalent in the language and is not imported",
        );
    }
    for obj in objects {
        for s in obj.refs.subsets.borrow().iter() {
            if !mesh.has_subset(&s.ns, &s.service, &lit::ident(&s.subset)) {
                obj.ctx.report(
                    diag::BAD_VALUE,
                    s.span,
                    &s.path,
                    &format!(
                        "no DestinationRule in the input defines subset {} of {}: import its \
                         DestinationRule too",
                        s.subset, s.service
                    ),
                );
            }
        }
    }
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let mut header = vec![format!(
        "imported by `meshc import` from {}",
        names.join(", ")
    )];
    header.extend(notes);
    let text = render::render(&mesh, &header);
    mesh_lang::format_source(&text).map_err(|diagnostics| {
        let first = diagnostics
            .first()
            .map(|d| {
                let (line, col) = mesh_lang::LineIndex::new(text.as_str()).line_col(d.span.start);
                format!("{} at {line}:{col}", d.message)
            })
            .unwrap_or_default();
        ImportError::Generated(first)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use super::*;

    fn codes(yaml: &str) -> (Option<String>, Vec<&'static str>) {
        let out = import(&[Input::new("t.yaml", yaml)]).unwrap();
        let codes = out.diagnostics.concat().iter().map(|d| d.code).collect();
        (out.mesh, codes)
    }

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n";

    #[test]
    fn a_complete_import_has_no_diagnostics() {
        let (mesh, codes) = codes(VS);
        assert!(codes.is_empty(), "{codes:?}");
        let mesh = mesh.unwrap();
        assert_eq!(mesh_lang::format_source(&mesh).unwrap(), mesh);
    }

    #[test]
    fn each_family_has_its_code() {
        assert_eq!(codes("a: [").1, vec![diag::MALFORMED]);
        assert_eq!(
            codes("kind: Pod\napiVersion: v1\n").1,
            vec![diag::UNKNOWN_KIND]
        );
        assert_eq!(codes("- 1\n").1, vec![diag::UNKNOWN_KIND]);
        let (mesh, c) = codes(&format!(
            "{VS}    mirror: {{host: r}}\n    corsPolicy: {{}}\n"
        ));
        assert_eq!(c, vec![diag::NOT_EXPRESSIBLE]);
        assert!(mesh.unwrap().contains("mirror r"));
        assert_eq!(
            codes(&format!("{VS}    timeout: soon\n")).1,
            vec![diag::BAD_VALUE]
        );
        assert_eq!(
            codes(&format!("{VS}    timeuot: 1s\n")).1,
            vec![diag::UNKNOWN_FIELD]
        );
        let gw =
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n";
        assert_eq!(codes(gw).1, vec![diag::NOT_EXPRESSIBLE]);
    }

    #[test]
    fn diagnostics_name_the_object_and_the_yaml_path() {
        let out = import(&[Input::new("t.yaml", format!("{VS}    corsPolicy: {{}}\n"))]).unwrap();
        let d = &out.diagnostics[0][0];
        assert_eq!(
            d.message,
            "VirtualService r (default) spec.http[0].corsPolicy: CORS policies are not expressible"
        );
        let yaml = format!("{VS}    corsPolicy: {{}}\n");
        assert!(yaml[d.span.start..d.span.end].starts_with("corsPolicy"));
    }

    #[test]
    fn retries_that_cannot_fit_in_the_timeout_are_dropped_with_a_comment() {
        let yaml = format!(
            "{VS}    timeout: 1s\n    retries: {{attempts: 3, perTryTimeout: 400ms, retryOn: 'gateway-error,503,cancelled'}}\n"
        );
        let (mesh, c) = codes(&yaml);
        let mesh = mesh.unwrap();
        assert!(
            mesh.contains("// Istio: 3 retries; only 2 tries of 400ms fit in the 1s timeout"),
            "{mesh}"
        );
        assert!(
            mesh.contains(
                "attempts 2\n      per_try_timeout 400ms\n      on [gateway_error, 503]\n      backoff 25ms..250ms\n"
            ),
            "{mesh}"
        );
        // `cancelled` is a gRPC condition.
        assert_eq!(c, vec![diag::NOT_EXPRESSIBLE]);
    }

    #[test]
    fn a_mesh_wide_permissive_peer_authentication_makes_the_mesh_permissive() {
        let pa = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: PERMISSIVE}\n";
        let (mesh, c) = codes(&format!("{pa}---\n{VS}"));
        let mesh = mesh.unwrap();
        assert!(c.is_empty(), "{c:?}");
        assert!(mesh.contains("mtls permissive"), "{mesh}");
        assert!(mesh.contains("allow from any"), "{mesh}");
        let narrow = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}\nspec:\n  mtls: {mode: DISABLE}\n";
        assert_eq!(codes(narrow).1, vec![diag::NOT_EXPRESSIBLE]);
    }

    #[test]
    fn service_entries_declare_internal_services_and_report_external_ones() {
        let internal = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ledger}\nspec:\n  location: MESH_INTERNAL\n  hosts: [ledger.shop.svc.cluster.local]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n";
        let (mesh, c) = codes(internal);
        assert!(c.is_empty(), "{c:?}");
        assert!(
            mesh.unwrap()
                .contains("namespace shop {\n  service ledger {")
        );
        let external = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n";
        assert_eq!(codes(external).1, vec![diag::NOT_EXPRESSIBLE]);
    }

    #[test]
    fn a_policy_that_selects_no_service_is_noted() {
        let ap = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: shop}\nspec: {}\n";
        let (mesh, c) = codes(ap);
        assert!(c.is_empty(), "{c:?}");
        assert!(mesh.unwrap().contains(
            "// AuthorizationPolicy allow-nothing (shop) selects no service named in the input"
        ));
    }

    #[test]
    fn httproute_filters_timeouts_and_retries() {
        let yaml = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: api, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/}, method: GET}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-api, value: '1'}], remove: [x-debug], add: [{name: a, value: b}]}
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: api-shadow, port: 8080}, percent: 10}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x, value: y}]}
    backendRefs: [{name: api, port: 8080}]
    timeouts: {request: 3s, backendRequest: 1s}
    retry: {attempts: 2, codes: [503], backoff: 50ms}
";
        let out = import(&[Input::new("r.yaml", yaml)]).unwrap();
        let mesh = out.mesh.unwrap();
        for line in [
            "rule api-0 when (path == \"/v1\" || path starts_with \"/v1/\") && method == GET {",
            "set_header \"x-api\" \"1\"",
            "remove_header \"x-debug\"",
            "rewrite_prefix \"/v1/\" \"/\"",
            "mirror api-shadow 10%",
            "timeout 3s",
            "attempts 3\n        per_try_timeout 1s\n        on [503]\n        backoff 50ms..500ms\n",
        ] {
            assert!(mesh.contains(line), "{line}\n{mesh}");
        }
        let messages: Vec<&str> = out.diagnostics[0]
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].ends_with(
                "appending to a header is not expressible (the language's `set_header` replaces it)"
            ),
            "{messages:?}"
        );
        assert!(
            messages[1].contains(
                "spec.rules[0].filters[3]: filter ResponseHeaderModifier is not expressible"
            ),
            "{messages:?}"
        );
    }

    #[test]
    fn virtual_service_matches_and_rule_members() {
        let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.default.svc.cluster.local]
  http:
  - name: v1.api
    match:
    - uri: {prefix: /v1/}
      method: {exact: POST}
      queryParams: {debug: {exact: '1'}}
      withoutHeaders: {x-internal: {}}
    - uri: {regex: '/v1/[0-9]+'}
      ignoreUriCase: true
    route:
    - destination: {host: api, subset: v1}
    headers:
      request:
        set: {x-version: v1}
        remove: [x-debug]
    mirror: {host: api, subset: v2}
    mirrorPercentage: {value: 12.5}
  - route:
    - destination: {host: api, subset: v1}
      weight: 1
    - destination: {host: api, subset: v2}
      weight: 2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    connectionPool: {tcp: {maxConnections: 100}, http: {http1MaxPendingRequests: 10, http2MaxRequests: 50}}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
";
        let (mesh, c) = codes(yaml);
        assert!(c.is_empty(), "{c:?}");
        let mesh = mesh.unwrap();
        for line in [
            "rule v1-api when path starts_with \"/v1/\" && method == POST && !(exists header(\"x-internal\")) && query(\"debug\") == \"1\" || path matches r\"(?i)^(?:/v1/[0-9]+)$\" {",
            "set_header \"x-version\" \"v1\"",
            "remove_header \"x-debug\"",
            "mirror api.v2 12.5%",
            "api.v1 33.333%",
            "api.v2 66.667%",
            "balance least_request",
            "max_connections 100\n    max_pending 10\n    max_requests 50\n",
            "consecutive_5xx 3\n    interval 5s\n    base_ejection 1m\n    max_ejected 50%\n",
        ] {
            assert!(mesh.contains(line), "{line}\n{mesh}");
        }
    }

    /// Every fixture, mangled in many deterministic ways, imports without a panic and
    /// never yields text that does not parse.
    #[test]
    fn mangled_fixtures_never_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut texts = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    texts.push(std::fs::read_to_string(path).unwrap());
                }
            }
        }
        assert!(texts.len() > 10);
        let replacements = [
            "",
            "~",
            "[]",
            "{}",
            "1",
            "-1",
            "\"x\"",
            "[1, {a: b}]",
            "99999999999999999999",
        ];
        let mut runs = 0;
        for text in &texts {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                // The line dropped.
                let mut v = lines.clone();
                v.remove(i);
                runs += run(&v.join("\n"));
                // Its value replaced by others of every type.
                if let Some((key, _)) = line.split_once(": ") {
                    for r in replacements {
                        let mut v = lines.clone();
                        let new = format!("{key}: {r}");
                        v[i] = &new;
                        runs += run(&v.join("\n"));
                    }
                }
            }
            for cut in (0..text.len()).step_by(37) {
                if text.is_char_boundary(cut) {
                    runs += run(&text[..cut]);
                }
            }
        }
        assert!(runs > 1000, "{runs}");
    }

    fn run(text: &str) -> usize {
        match import(&[Input::new("m.yaml", text)]) {
            Ok(_) => 1,
            Err(err) => panic!("{err}\n--- input:\n{text}"),
        }
    }
}
