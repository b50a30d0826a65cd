//! Error recovery: every independent syntax error is reported at its line and column, and
//! the rest of the file still yields a tree.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_lang::ast::{ItemKind, ServiceMember};
use mesh_lang::{LineIndex, parse};

fn positions(src: &str) -> Vec<(usize, usize)> {
    let lines = LineIndex::new(src);
    parse(src)
        .diagnostics
        .iter()
        .map(|d| lines.line_col(d.span.start))
        .collect()
}

#[test]
fn three_independent_errors_are_all_reported_with_line_and_column() {
    let src = include_str!("corpus/invalid/three-errors.mesh");
    assert_eq!(positions(src), [(2, 3), (7, 23), (13, 8)]);
}

#[test]
fn columns_count_characters_not_bytes() {
    // `~` is the 43rd character of line 2 but its 44th byte.
    let src = include_str!("corpus/invalid/non-ascii-before-error.mesh");
    assert_eq!(positions(src), [(2, 43)]);
}

#[test]
fn the_tree_survives_errors() {
    let src = "service a {\n  prot 80\n  port 81\n}\nroute a { timeout }\nservice b { port 82 }\n";
    let parsed = parse(src);
    assert_eq!(parsed.diagnostics.len(), 2);
    let kinds: Vec<_> = parsed.file.items.iter().map(|i| &i.kind).collect();
    let [
        ItemKind::Service(a),
        ItemKind::Route(_),
        ItemKind::Service(b),
    ] = kinds.as_slice()
    else {
        panic!("{kinds:?}");
    };
    assert_eq!(a.name.name, "a");
    assert!(matches!(a.members[0].node, ServiceMember::Error));
    assert!(matches!(a.members[1].node, ServiceMember::Port { .. }));
    assert_eq!(b.name.name, "b");
}

#[test]
fn a_half_written_file_still_parses() {
    let src = "namespace shop {\n  service cart {\n    port http 8080\n    subset v1 { version = ";
    let parsed = parse(src);
    assert!(!parsed.diagnostics.is_empty());
    let [item] = parsed.file.items.as_slice() else {
        panic!()
    };
    let ItemKind::Namespace(ns) = &item.kind else {
        panic!()
    };
    let ItemKind::Service(cart) = &ns.items[0].kind else {
        panic!()
    };
    assert!(matches!(cart.members[0].node, ServiceMember::Port { .. }));
}

#[test]
fn errors_inside_a_block_do_not_close_the_enclosing_block() {
    // The `{` after the broken condition is skipped whole: `to a` and its `}` do not end
    // the route, so the rule after it is still a member of the route.
    let src = "route a {\n  rule r when path == { to a }\n  rule s { to a }\n}\n";
    let parsed = parse(src);
    assert_eq!(parsed.diagnostics.len(), 1);
    let ItemKind::Route(route) = &parsed.file.items[0].kind else {
        panic!()
    };
    assert_eq!(route.members.len(), 2);
}

#[test]
fn doc_comments_attach_to_the_next_item_subset_and_rule() {
    let src = "/// A service.\n/// Second line.\nservice a {\n  /// Stable.\n  subset v1 { version = \"v1\" }\n}\n// plain\nservice b {}\n/// Route docs.\n\nroute a {\n  /// Rule docs.\n  rule r { to a }\n}\n";
    let parsed = parse(src);
    let docs: Vec<_> = parsed.file.items.iter().map(|i| i.doc.as_deref()).collect();
    assert_eq!(
        docs,
        [Some("A service.\nSecond line."), None, Some("Route docs.")]
    );
    let ItemKind::Service(a) = &parsed.file.items[0].kind else {
        panic!()
    };
    let ServiceMember::Subset(v1) = &a.members[0].node else {
        panic!()
    };
    assert_eq!(v1.doc.as_deref(), Some("Stable."));
    let ItemKind::Route(route) = &parsed.file.items[2].kind else {
        panic!()
    };
    let mesh_lang::ast::RouteMember::Rule(rule) = &route.members[0].node else {
        panic!()
    };
    assert_eq!(rule.doc.as_deref(), Some("Rule docs."));
}

#[test]
fn operator_precedence_and_binds_tighter_than_or() {
    let src =
        "route a { rule r when method == GET || path == \"/a\" && !exists header(\"x\") { to a } }";
    let parsed = parse(src);
    assert!(parsed.diagnostics.is_empty());
    let ItemKind::Route(route) = &parsed.file.items[0].kind else {
        panic!()
    };
    let mesh_lang::ast::RouteMember::Rule(rule) = &route.members[0].node else {
        panic!()
    };
    use mesh_lang::ast::ExprKind;
    let ExprKind::Or(_, right) = &rule.when.as_ref().unwrap().kind else {
        panic!()
    };
    let ExprKind::And(_, not) = &right.kind else {
        panic!()
    };
    assert!(matches!(not.kind, ExprKind::Not(_)));
}
