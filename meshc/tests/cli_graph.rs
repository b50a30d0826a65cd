//! `meshc graph`, through the real binary: the edges of the DOT it writes for the example
//! meshes are exactly the calls their policies allow (bookinfo's allowed pairs present,
//! denied pairs absent, audit-mode callees marked), subsets hang off their services, an
//! SVG is drawn when Graphviz is there, and bad input is refused. The live rates of
//! `--state` are tested against a running mesh in `tests/tests/bookinfo.rs`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::collections::{BTreeMap, BTreeSet};

use mesh_test_support::{run_meshc, workspace_root as root};

/// The edges of a DOT graph as (from, to) → their `class`.
fn edges(dot: &str) -> BTreeMap<(String, String), String> {
    dot.lines()
        .filter_map(|line| {
            let (from, rest) = line.trim().split_once(" -> ")?;
            let (to, attributes) = rest.split_once(" [")?;
            let class = attributes
                .split("class=\"")
                .nth(1)?
                .split('"')
                .next()?
                .to_string();
            Some(((unquote(from), unquote(to)), class))
        })
        .collect()
}

fn unquote(text: &str) -> String {
    text.trim_matches('"').to_string()
}

fn graph(args: &[&str]) -> String {
    let mut all = vec!["graph"];
    all.extend(args);
    let output = run_meshc(&all, &root());
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn bookinfo_edges_are_the_calls_its_policies_allow() {
    let dot = graph(&["examples/bookinfo"]);
    assert!(dot.starts_with("digraph \"bookinfo\" {"), "{dot}");
    let edges = edges(&dot);
    let calls: BTreeSet<(String, String)> = edges
        .iter()
        .filter(|(_, class)| *class != "subset")
        .map(|(pair, _)| pair.clone())
        .collect();
    let pair = |a: &str, b: &str| (format!("bookinfo/{a}"), format!("bookinfo/{b}"));
    // What bookinfo.mesh's policies say, read by a person: productpage reads details
    // and reviews, reviews reads ratings, ratings reads mongodb, anyone in the mesh may
    // open productpage.
    for (from, to) in [
        ("productpage", "details"),
        ("productpage", "reviews"),
        ("reviews", "ratings"),
        ("ratings", "mongodb"),
        ("details", "productpage"),
        ("reviews", "productpage"),
    ] {
        assert!(calls.contains(&pair(from, to)), "no {from} -> {to}:\n{dot}");
        assert_eq!(edges[&pair(from, to)], "allowed");
    }
    // And what they deny (default_policy deny): no edge.
    for (from, to) in [
        ("details", "reviews"),
        ("details", "ratings"),
        ("ratings", "reviews"),
        ("productpage", "ratings"),
        ("productpage", "mongodb"),
        ("reviews", "details"),
    ] {
        assert!(
            !calls.contains(&pair(from, to)),
            "{from} -> {to} is denied:\n{dot}"
        );
    }
    // The ingress gateway is a node with an edge to the one service its rules route to.
    let gateway = "gateway/bookinfo/bookinfo-gateway";
    assert!(
        dot.contains(&format!(
            "\"{gateway}\" [label=\"gateway bookinfo-gateway\", shape=invhouse"
        )),
        "{dot}"
    );
    let from_gateway: Vec<&(String, String)> =
        calls.iter().filter(|(from, _)| from == gateway).collect();
    assert_eq!(
        from_gateway,
        [&(gateway.to_string(), "bookinfo/productpage".to_string())],
        "{dot}"
    );
    // Every edge connects services (or gateways) of the mesh.
    for (from, to) in &calls {
        assert!(dot.contains(&format!("\"{from}\" [label=")), "{from}");
        assert!(dot.contains(&format!("\"{to}\" [label=")), "{to}");
    }
    // reviews' subsets hang off reviews.
    for subset in ["v1", "v2", "v3"] {
        assert_eq!(
            edges[&pair("reviews", &format!("reviews.{subset}"))],
            "subset"
        );
    }
}

#[test]
fn calls_into_an_audit_mode_policy_are_marked() {
    let edges = edges(&graph(&["examples"]));
    // data/inventory's policy audits: every caller gets through, and the edge says so.
    let audit: Vec<_> = edges
        .iter()
        .filter(|((_, to), _)| to == "data/inventory")
        .collect();
    assert!(!audit.is_empty());
    assert!(
        audit.iter().all(|(_, class)| *class == "audit"),
        "{audit:?}"
    );
}

#[test]
fn an_svg_is_drawn_by_graphviz() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bookinfo.svg");
    let output = run_meshc(
        &["graph", "examples/bookinfo", "-o", svg.to_str().unwrap()],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"), "{text}");
    assert!(text.contains("productpage"), "{text}");
    // And DOT to a file.
    let dot = dir.path().join("bookinfo.dot");
    let output = run_meshc(
        &["graph", "examples/bookinfo", "-o", dot.to_str().unwrap()],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(
        std::fs::read_to_string(&dot)
            .unwrap()
            .starts_with("digraph")
    );
}

#[test]
fn bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.mesh");
    std::fs::write(&broken, "service a { port http 99999 }").unwrap();
    let output = run_meshc(&["graph", broken.to_str().unwrap()], &root());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let state = dir.path().join("state.json");
    std::fs::write(&state, "not json").unwrap();
    let output = run_meshc(
        &[
            "graph",
            "examples/bookinfo",
            "--state",
            state.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a `meshc up --state` file"));
    for window in ["nan", "0", "-1", "1e9"] {
        let output = run_meshc(&["graph", "examples/bookinfo", "--window", window], &root());
        assert_eq!(
            output.status.code(),
            Some(2),
            "--window {window}: {output:?}"
        );
    }
}
