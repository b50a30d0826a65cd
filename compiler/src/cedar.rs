//! Cedar generation: the schema of the mesh and, per protected service, a policy set that
//! says in Cedar what its `policy` block says (LANGUAGE.md §7). `allow` becomes `permit`,
//! `deny` becomes `forbid`; every generated policy carries `@id("FILE:LINE WHAT")` so a
//! decision names its source. Inline `cedar` blocks are validated against the schema and
//! their errors (`E0009`) point inside the `.mesh` file.
//!
//! The request model (mirrored by `mesh-config`'s authorizer): principal
//! `Mesh::Service::"NS/SERVICE_ACCOUNT"` (in `Mesh::Namespace::"NS"`) or `Mesh::Anonymous`,
//! action `Mesh::Action::"METHOD"` (`Mesh::Action::"TCP"` for an opaque TCP connection),
//! resource the protected service, context
//! `{ port, path, host, headers, has_headers, query, has_query, matched }`.
//!
//! A rule that reads the request above L4 (methods, paths, or a condition on the method,
//! path, host, headers or query) is scoped to the HTTP actions, so it never applies to a
//! connection; `ports [...]` tests `context.port`. Rules without L7 content leave the
//! action open: `allow from orders` admits orders' requests and connections alike.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::str::FromStr;

use cedar_policy::{PolicySet, Schema, ValidationMode, Validator};
use mesh_config::TCP_ACTION;
use mesh_lang::Diagnostic;
use mesh_lang::ast::Span;

use crate::diag::{CEDAR, Finding};
use crate::ir::{
    AccessRule, CedarBlock, Cond, CondKind, Effect, Gateway, Mesh, Method, Principal, Service,
    TextAttr, TextOp,
};
use crate::load::Loaded;

/// What Cedar needs to know about a request beyond its method and path, mesh-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextShape {
    /// Headers read by any policy.
    pub headers: BTreeSet<String>,
    /// Query parameters read by any policy.
    pub query: BTreeSet<String>,
    /// Regexes tested by any policy: (attribute, regex) → key in `context.matched`.
    pub patterns: BTreeMap<(TextAttr, String), String>,
}

/// One service's policies in Cedar, and what its context must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePolicies {
    /// The Cedar text.
    pub text: String,
    /// Headers these policies read.
    pub headers: BTreeSet<String>,
    /// Query parameters these policies read.
    pub query: BTreeSet<String>,
    /// Regex keys these policies read, with their attribute and regex.
    pub patterns: Vec<(String, TextAttr, String)>,
}

/// The Cedar output of a mesh.
#[derive(Clone, Debug)]
pub struct CedarOutput {
    /// The schema, in Cedar schema syntax.
    pub schema: String,
    /// Policies per service index (`None` for services without a policy).
    pub services: Vec<Option<ServicePolicies>>,
}

/// `NS/SERVICE_ACCOUNT`: how Cedar names a service (its verified identity).
pub fn principal_id(service: &Service) -> String {
    format!("{}/{}", service.namespace, service.identity)
}

/// `NS/SERVICE_ACCOUNT` of a gateway: the principal its SPIFFE id gives it, the same
/// entity type as a service's.
pub fn gateway_principal_id(gateway: &Gateway) -> String {
    format!("{}/{}", gateway.namespace, gateway.identity)
}

/// A Cedar string literal.
pub fn cedar_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

/// Appends `c` to a Cedar string or pattern literal, escaped.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A Cedar `like` pattern from a glob (same syntax: `*` any text, `\*` a star), quoted.
fn cedar_like(glob: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push('*'),
            '\\' => match chars.next() {
                Some('*') => out.push_str("\\*"),
                _ => push_escaped(&mut out, '\\'),
            },
            c => push_escaped(&mut out, c),
        }
    }
    out.push('"');
    out
}

/// A quoted `like` pattern matching values that start with `prefix`.
fn cedar_prefix(prefix: &str) -> String {
    let mut out = String::from("\"");
    for c in prefix.chars() {
        match c {
            '*' => out.push_str("\\*"),
            c => push_escaped(&mut out, c),
        }
    }
    out.push_str("*\"");
    out
}

/// Generates the schema and policies, validating both (inline blocks report `E0009`).
pub fn generate(mesh: &Mesh, loaded: &Loaded, findings: &mut Vec<Finding>) -> CedarOutput {
    let shape = context_shape(mesh);
    let schema_text = schema(&shape);
    let schema = match Schema::from_cedarschema_str(&schema_text) {
        Ok((schema, _warnings)) => Some(schema),
        Err(error) => {
            // The schema is generated: a failure here is a compiler bug, reported once.
            if let Some(service) = mesh.services.iter().find(|s| s.policy.is_some()) {
                findings.push(Finding {
                    file: service.origin.file,
                    diagnostic: Diagnostic::error(
                        CEDAR,
                        format!("internal: the generated Cedar schema is invalid: {error}"),
                        service.name_origin.span,
                        "while generating this",
                    ),
                });
            }
            None
        }
    };
    let validator = schema.map(Validator::new);
    let locations = Locations::new(loaded);
    // Generated policies are validated in batches: one parse and one validation per
    // batch instead of per rule, in bounded memory.
    let mut generated: Vec<(String, &AccessRule)> = Vec::new();
    let services = mesh
        .services
        .iter()
        .map(|service| {
            let policy = service.policy.as_ref()?;
            let mut out = ServicePolicies {
                text: String::new(),
                headers: BTreeSet::new(),
                query: BTreeSet::new(),
                patterns: Vec::new(),
            };
            let resource = format!("Mesh::Service::{}", cedar_str(&principal_id(service)));
            for rule in &policy.rules {
                let policy_text = access_rule(mesh, &locations, rule, &resource, &shape, &mut out);
                out.text.push_str(&policy_text);
                if let Some(validator) = &validator {
                    generated.push((policy_text, rule));
                    if generated.len() >= VALIDATION_BATCH {
                        validate_generated(validator, &generated, findings);
                        generated.clear();
                    }
                }
            }
            for (index, block) in policy.cedar.iter().enumerate() {
                if let Some(validator) = &validator
                    && !validate_inline(validator, block, findings)
                {
                    continue;
                }
                out.text
                    .push_str(&inline_with_ids(&locations, block, index));
            }
            if !policy.cedar.is_empty() {
                // Inline blocks are validated against the mesh-wide schema, so they may read
                // any header, query parameter or pattern that some policy of the mesh reads.
                // The context must carry all of them: a missing attribute is an evaluation
                // error, and Cedar skips a policy that errors — a `forbid` would fail open.
                out.headers.extend(shape.headers.iter().cloned());
                out.query.extend(shape.query.iter().cloned());
                for ((attr, regex), key) in &shape.patterns {
                    if !out.patterns.iter().any(|(k, _, _)| k == key) {
                        out.patterns
                            .push((key.clone(), attr.clone(), regex.clone()));
                    }
                }
            }
            Some(out)
        })
        .collect();
    if let Some(validator) = &validator {
        validate_generated(validator, &generated, findings);
    }
    CedarOutput {
        schema: schema_text,
        services,
    }
}

fn context_shape(mesh: &Mesh) -> ContextShape {
    let mut shape = ContextShape::default();
    for service in &mesh.services {
        let Some(policy) = &service.policy else {
            continue;
        };
        for rule in &policy.rules {
            if let Some(when) = &rule.when {
                collect_shape(when, &mut shape);
            }
        }
    }
    shape
}

fn collect_shape(cond: &Cond, shape: &mut ContextShape) {
    let note_attr = |attr: &TextAttr, shape: &mut ContextShape| match attr {
        TextAttr::Header(name) => {
            shape.headers.insert(name.clone());
        }
        TextAttr::Query(name) => {
            shape.query.insert(name.clone());
        }
        TextAttr::Path | TextAttr::Host => {}
    };
    match &cond.kind {
        CondKind::All(items) | CondKind::Any(items) => {
            items.iter().for_each(|c| collect_shape(c, shape))
        }
        CondKind::Not(inner) => collect_shape(inner, shape),
        CondKind::Text { attr, op, value } => {
            note_attr(attr, shape);
            if *op == TextOp::Matches {
                let next = format!("m{}", shape.patterns.len());
                shape
                    .patterns
                    .entry((attr.clone(), value.clone()))
                    .or_insert(next);
            }
        }
        CondKind::TextIn { attr, .. } | CondKind::Exists(attr) => note_attr(attr, shape),
        CondKind::Method { .. } | CondKind::Source { .. } => {}
    }
}

/// The Cedar schema of the mesh.
fn schema(shape: &ContextShape) -> String {
    let record = |names: &BTreeSet<String>, ty: &str| -> String {
        let fields: Vec<String> = names
            .iter()
            .map(|n| format!("{}: {ty}", cedar_str(n)))
            .collect();
        format!("{{ {} }}", fields.join(", "))
    };
    let matched: BTreeSet<String> = shape.patterns.values().cloned().collect();
    let actions: Vec<String> = Method::ALL
        .iter()
        .map(|m| cedar_str(m.as_str()))
        .chain([cedar_str(TCP_ACTION)])
        .collect();
    format!(
        "// Generated by meshc from the mesh's policies.\nnamespace Mesh {{\n  entity Namespace;\n  entity Service in [Namespace];\n  entity Anonymous;\n  type Headers = {};\n  type Query = {};\n  type Matched = {};\n  type RequestContext = {{\n    port: Long,\n    path: String,\n    host: String,\n    headers: Headers,\n    has_headers: Set<String>,\n    query: Query,\n    has_query: Set<String>,\n    matched: Matched,\n  }};\n  action {} appliesTo {{\n    principal: [Service, Anonymous],\n    resource: [Service],\n    context: RequestContext,\n  }};\n}}\n",
        record(&shape.headers, "String"),
        record(&shape.query, "String"),
        record(&matched, "Bool"),
        actions.join(", "),
    )
}

/// `FILE:LINE` of origins. Each file's newlines are found once: a mesh of thousands of
/// policies would otherwise rescan its file from the start for every rule (quadratic).
struct Locations<'a> {
    loaded: &'a Loaded,
    /// Per file (by id), the byte offsets of its newlines.
    newlines: Vec<Vec<usize>>,
}

impl<'a> Locations<'a> {
    fn new(loaded: &'a Loaded) -> Locations<'a> {
        let newlines = loaded
            .files
            .iter()
            .map(|f| {
                f.source
                    .text
                    .bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        Locations { loaded, newlines }
    }

    /// `FILE:LINE`, the line 1-based (as `SourceFile::line_col` counts it).
    fn of(&self, origin: crate::ir::Origin) -> String {
        let (Some(file), Some(newlines)) = (
            self.loaded.file(origin.file),
            self.newlines.get(origin.file.0 as usize),
        ) else {
            return String::new();
        };
        let line = newlines.partition_point(|&nl| nl < origin.span.start) + 1;
        format!("{}:{line}", file.source.name)
    }
}

fn access_rule(
    mesh: &Mesh,
    locations: &Locations<'_>,
    rule: &AccessRule,
    resource: &str,
    shape: &ContextShape,
    out: &mut ServicePolicies,
) -> String {
    let (effect, word) = match rule.effect {
        Effect::Allow => ("permit", "allow"),
        Effect::Deny => ("forbid", "deny"),
    };
    let from: Vec<String> = rule.from.iter().map(|p| principal_text(mesh, p)).collect();
    let id = format!(
        "{} {word} from {}",
        locations.of(rule.origin),
        from.join(", ")
    );
    let action = match &rule.methods {
        Some(methods) => format!("action in [{}]", method_list(methods)),
        // L7 content never applies to an opaque TCP connection: keep the rule to HTTP.
        None if rule.reads_request() => format!("action in [{}]", method_list(&Method::ALL)),
        None => "action".to_string(),
    };
    let mut conditions = Vec::new();
    if !rule.from.contains(&Principal::Any) {
        let alternatives: Vec<String> = rule.from.iter().map(|p| principal_cond(mesh, p)).collect();
        conditions.push(or(alternatives));
    }
    if let Some(ports) = &rule.ports {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        conditions.push(format!("[{}].contains(context.port)", list.join(", ")));
    }
    if let Some(paths) = &rule.paths {
        conditions.push(or(paths
            .iter()
            .map(|p| format!("context.path like {}", cedar_like(p)))
            .collect()));
    }
    if let Some(when) = &rule.when {
        conditions.push(cond(mesh, when, shape, out));
    }
    let mut text = format!(
        "@id({})\n{effect} (principal, {action}, resource == {resource})",
        cedar_str(&id)
    );
    if !conditions.is_empty() {
        let _ = write!(text, "\nwhen {{ {} }}", conditions.join(" && "));
    }
    text.push_str(";\n\n");
    text
}

fn principal_text(mesh: &Mesh, principal: &Principal) -> String {
    match principal {
        Principal::Any => "any".into(),
        Principal::Authenticated => "authenticated".into(),
        Principal::Namespace(ns) => format!("namespace {ns}"),
        Principal::Service(id) => mesh.service(*id).map(Service::key).unwrap_or_default(),
        Principal::Gateway(id) => mesh
            .gateway(*id)
            .map(|g| format!("gateway {}", g.key()))
            .unwrap_or_default(),
    }
}

fn principal_cond(mesh: &Mesh, principal: &Principal) -> String {
    match principal {
        Principal::Any => "true".into(),
        Principal::Authenticated => "principal is Mesh::Service".into(),
        Principal::Namespace(ns) => format!(
            "principal is Mesh::Service in Mesh::Namespace::{}",
            cedar_str(ns)
        ),
        Principal::Service(id) => match mesh.service(*id) {
            Some(s) => format!(
                "principal == Mesh::Service::{}",
                cedar_str(&principal_id(s))
            ),
            None => "false".into(),
        },
        Principal::Gateway(id) => match mesh.gateway(*id) {
            Some(g) => format!(
                "principal == Mesh::Service::{}",
                cedar_str(&gateway_principal_id(g))
            ),
            None => "false".into(),
        },
    }
}

fn method_list(methods: &[Method]) -> String {
    methods
        .iter()
        .map(|m| format!("Mesh::Action::{}", cedar_str(m.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn or(mut alternatives: Vec<String>) -> String {
    if alternatives.len() == 1 {
        return alternatives.remove(0);
    }
    format!("({})", alternatives.join(" || "))
}

fn attr_expr(attr: &TextAttr) -> String {
    match attr {
        TextAttr::Path => "context.path".into(),
        TextAttr::Host => "context.host".into(),
        TextAttr::Header(name) => format!("context.headers[{}]", cedar_str(name)),
        TextAttr::Query(name) => format!("context.query[{}]", cedar_str(name)),
    }
}

fn cond(mesh: &Mesh, c: &Cond, shape: &ContextShape, out: &mut ServicePolicies) -> String {
    let note = |attr: &TextAttr, out: &mut ServicePolicies| match attr {
        TextAttr::Header(n) => {
            out.headers.insert(n.clone());
        }
        TextAttr::Query(n) => {
            out.query.insert(n.clone());
        }
        _ => {}
    };
    match &c.kind {
        CondKind::All(items) => format!(
            "({})",
            items
                .iter()
                .map(|i| cond(mesh, i, shape, out))
                .collect::<Vec<_>>()
                .join(" && ")
        ),
        CondKind::Any(items) => format!(
            "({})",
            items
                .iter()
                .map(|i| cond(mesh, i, shape, out))
                .collect::<Vec<_>>()
                .join(" || ")
        ),
        CondKind::Not(inner) => format!("!({})", cond(mesh, inner, shape, out)),
        CondKind::Method { negated, methods } => {
            let test = format!("action in [{}]", method_list(methods));
            if *negated { format!("!({test})") } else { test }
        }
        CondKind::Text { attr, op, value } => {
            note(attr, out);
            let x = attr_expr(attr);
            match op {
                TextOp::Eq => format!("{x} == {}", cedar_str(value)),
                TextOp::Ne => format!("{x} != {}", cedar_str(value)),
                TextOp::StartsWith => format!("{x} like {}", cedar_prefix(value)),
                TextOp::Like => format!("{x} like {}", cedar_like(value)),
                TextOp::Matches => {
                    let key = shape
                        .patterns
                        .get(&(attr.clone(), value.clone()))
                        .cloned()
                        .unwrap_or_default();
                    if !out.patterns.iter().any(|(k, _, _)| *k == key) {
                        out.patterns
                            .push((key.clone(), attr.clone(), value.clone()));
                    }
                    format!("context.matched[{}]", cedar_str(&key))
                }
            }
        }
        CondKind::TextIn { attr, values } => {
            note(attr, out);
            let x = attr_expr(attr);
            or(values
                .iter()
                .map(|v| format!("{x} == {}", cedar_str(v)))
                .collect())
        }
        CondKind::Exists(attr) => {
            note(attr, out);
            match attr {
                TextAttr::Header(n) => format!("context.has_headers.contains({})", cedar_str(n)),
                TextAttr::Query(n) => format!("context.has_query.contains({})", cedar_str(n)),
                TextAttr::Path | TextAttr::Host => "true".into(),
            }
        }
        CondKind::Source {
            negated,
            services,
            gateways,
        } => {
            let alternatives: Vec<String> = services
                .iter()
                .map(|id| principal_cond(mesh, &Principal::Service(*id)))
                .chain(
                    gateways
                        .iter()
                        .map(|id| principal_cond(mesh, &Principal::Gateway(*id))),
                )
                .collect();
            let test = or(alternatives);
            if *negated { format!("!({test})") } else { test }
        }
    }
}

/// How many generated policies are validated together.
const VALIDATION_BATCH: usize = 1_024;

/// Validates the generated policies (one per access rule, in order) against the schema.
/// They are generated, so a problem is a compiler bug, reported at the rule it came from.
fn validate_generated(
    validator: &Validator,
    generated: &[(String, &AccessRule)],
    findings: &mut Vec<Finding>,
) {
    if generated.is_empty() {
        return;
    }
    let all: String = generated.iter().map(|(text, _)| text.as_str()).collect();
    let Ok(set) = PolicySet::from_str(&all) else {
        // Some rule does not even parse: find which, one by one (the rare path).
        for (text, rule) in generated {
            if let Err(e) = PolicySet::from_str(text) {
                findings.push(generated_bug(rule, &e.to_string()));
            }
        }
        return;
    };
    // The parser names the policies of a set `policy0`, `policy1`, … in text order.
    let mut reported = BTreeSet::new();
    for error in validator
        .validate(&set, ValidationMode::Strict)
        .validation_errors()
    {
        let index = error
            .policy_id()
            .to_string()
            .strip_prefix("policy")
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(index) = index
            && let Some((_, rule)) = generated.get(index)
            && reported.insert(index)
        {
            findings.push(generated_bug(rule, &error.to_string()));
        }
    }
}

fn generated_bug(rule: &AccessRule, problem: &str) -> Finding {
    Finding {
        file: rule.origin.file,
        diagnostic: Diagnostic::error(
            CEDAR,
            format!("this rule does not translate to valid Cedar: {problem}"),
            rule.origin.span,
            "in this rule",
        )
        .with_help("this is a compiler bug; please report it with the rule"),
    }
}

/// Validates an inline block; reports `E0009` at the offending place inside it.
fn validate_inline(validator: &Validator, block: &CedarBlock, findings: &mut Vec<Finding>) -> bool {
    let report = |findings: &mut Vec<Finding>,
                  diagnostic: &dyn miette::Diagnostic,
                  fallback: String| {
        let label = diagnostic.labels().and_then(|mut labels| labels.next());
        let span = match (&label, block.verbatim_at) {
            (Some(l), Some(at)) => Span::new(at + l.offset(), at + l.offset() + l.len().max(1)),
            _ => block.origin.span,
        };
        let mut d = Diagnostic::error(
            CEDAR,
            format!("Cedar policy does not validate against the mesh schema: {fallback}"),
            span,
            label
                .and_then(|l| l.label().map(str::to_string))
                .unwrap_or_else(|| "does not validate".into()),
        );
        if let Some(help) = diagnostic.help() {
            d = d.with_help(help.to_string());
        } else {
            d = d.with_help("principals are `Mesh::Service::\"NS/SERVICE_ACCOUNT\"`, actions `Mesh::Action::\"GET\"`… and `Mesh::Action::\"TCP\"`, the context has `port`, `path`, `host`, `headers`, `query`");
        }
        findings.push(Finding {
            file: block.origin.file,
            diagnostic: d,
        });
    };
    match PolicySet::from_str(&block.text) {
        Err(errors) => {
            report(findings, &errors, errors.to_string());
            false
        }
        Ok(set) => {
            let set = with_readable_ids(set);
            let result = validator.validate(&set, ValidationMode::Strict);
            let mut ok = true;
            for error in result.validation_errors() {
                report(findings, error, error.to_string());
                ok = false;
            }
            ok
        }
    }
}

/// The policies of an inline block renamed for messages: by their `@id` when they have
/// one, else by position (`policy 2 of the block`) rather than Cedar's `policy1`.
fn with_readable_ids(set: PolicySet) -> PolicySet {
    let mut renamed = PolicySet::new();
    for (n, policy) in set.policies().enumerate() {
        let id = policy
            .annotation("id")
            .map_or_else(|| format!("policy {} of the block", n + 1), str::to_string);
        if renamed
            .add(policy.new_id(cedar_policy::PolicyId::new(id)))
            .is_err()
        {
            // Two policies with one `@id`: keep Cedar's own names.
            renamed = set.clone();
            break;
        }
    }
    renamed
}

/// The block's policies, each with an `@id` naming its place unless it has one.
fn inline_with_ids(locations: &Locations<'_>, block: &CedarBlock, index: usize) -> String {
    let Ok(set) = PolicySet::from_str(&block.text) else {
        return String::new();
    };
    let mut text = String::new();
    for (n, policy) in set.policies().enumerate() {
        if policy.annotation("id").is_none() {
            let id = format!(
                "{} cedar {}.{}",
                locations.of(block.origin),
                index + 1,
                n + 1
            );
            let _ = writeln!(text, "@id({})", cedar_str(&id));
        }
        let _ = write!(text, "{policy}\n\n");
    }
    text
}
