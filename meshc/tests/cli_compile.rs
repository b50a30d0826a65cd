//! `meshc compile`, through the real binary: the compiled examples (snapshotted file by
//! file, and checked for meaning: every config loads in `mesh-config`, the index's hashes
//! are right, outbound sections follow the policies), deterministic bytes, unchanged files
//! left alone, and nothing written when the mesh has errors.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use mesh_config::Config;
use mesh_config::schema::Authz;
use mesh_test_support::{run_meshc, tree, workspace_root as root};
use serde_json::Value;

/// Compiles the examples into `out`; returns the process output.
fn compile_examples(out: &Path) -> Output {
    let output = run_meshc(
        &["compile", "examples/bookinfo", "-o", out.to_str().unwrap()],
        &root(),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_examples_compile_to_the_snapshotted_files() {
    let out = tempfile::tempdir().unwrap();
    compile_examples(out.path());
    let files = tree(out.path());
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "bookinfo/bookinfo-gateway.json",
            "bookinfo/details.json",
            "bookinfo/mongodb.json",
            "bookinfo/productpage.json",
            "bookinfo/ratings.json",
            "bookinfo/reviews.json",
            "index.json",
            "mesh.cedarschema",
        ]
    );
    // The gateway's certificate paths are absolute: where this checkout is, redacted.
    let checkout = format!("{}/", root().display());
    for (path, bytes) in &files {
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace(&checkout, "[checkout]/");
        let name = format!("compile-examples-{}", path.replace('/', "-"));
        if path.ends_with(".json") {
            let mut value: Value = serde_json::from_str(&text).unwrap();
            // The index hashes the gateway's config as written, checkout path included.
            for gateway in value
                .get_mut("gateways")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                gateway["sha256"] = "[depends on the checkout]".into();
                gateway["bytes"] = "[depends on the checkout]".into();
            }
            insta::assert_json_snapshot!(name, value);
        } else {
            insta::assert_snapshot!(name, text);
        }
    }
}

#[test]
fn every_compiled_config_loads_and_the_index_describes_it() {
    let out = tempfile::tempdir().unwrap();
    compile_examples(out.path());
    let files = tree(out.path());
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["mesh"], "bookinfo");
    assert_eq!(index["version"], 1);
    assert_eq!(
        index["schema_sha256"],
        mesh_compiler::emit::sha256_hex(&files["mesh.cedarschema"])
    );
    let workloads = index["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 5);
    for entry in workloads {
        let path = entry["config"].as_str().unwrap();
        let bytes = &files[path];
        assert_eq!(entry["sha256"], mesh_compiler::emit::sha256_hex(bytes));
        assert_eq!(entry["bytes"].as_u64(), Some(bytes.len() as u64));
        let config = Config::from_json(bytes)
            .unwrap_or_else(|e| panic!("{path} does not load in mesh-config: {e}"));
        assert_eq!(config.source().workload.service, entry["service"]);
        assert_eq!(config.source().workload.identity, entry["identity"]);
    }

    let load = |path: &str| Config::from_json(&files[path]).unwrap();
    // Outbound sections follow the policies: productpage (open to every authenticated
    // workload) may call details and reviews; only reviews may call ratings, and only
    // ratings may connect to mongodb.
    let outbound = |path: &str| -> Vec<String> {
        load(path)
            .source()
            .outbound
            .services
            .iter()
            .map(|s| s.service.clone())
            .collect()
    };
    assert_eq!(
        outbound("bookinfo/productpage.json"),
        [
            "bookinfo/details",
            "bookinfo/productpage",
            "bookinfo/reviews"
        ]
    );
    assert_eq!(
        outbound("bookinfo/reviews.json"),
        ["bookinfo/productpage", "bookinfo/ratings"]
    );
    assert_eq!(
        outbound("bookinfo/ratings.json"),
        ["bookinfo/mongodb", "bookinfo/productpage"]
    );
    let mongodb = load("bookinfo/ratings.json");
    let mongodb = &mongodb.source().outbound.services[0];
    assert_eq!(
        (mongodb.connect_timeout_us, mongodb.idle_timeout_us),
        (Some(1_000_000), Some(1_800_000_000))
    );

    let reviews = load("bookinfo/reviews.json");
    let Authz::Cedar(cedar) = &reviews.source().inbound.authz else {
        panic!("reviews has a policy: its authz must be Cedar");
    };
    assert_eq!(cedar.headers, ["x-debug"]);
    assert!(
        cedar.policies.contains(
            "@id(\"examples/bookinfo/bookinfo.mesh:80 allow from bookinfo/productpage\")"
        )
    );
    assert!(
        cedar
            .policies
            .contains("@id(\"examples/bookinfo/bookinfo.mesh:83 deny from any\")")
    );
    assert!(matches!(
        load("bookinfo/details.json").source().inbound.authz,
        Authz::Cedar(_)
    ));

    let productpage = load("bookinfo/productpage.json");
    let route = &productpage.source().outbound.services[2];
    assert_eq!(
        route
            .rules
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["jason", "shift"]
    );
    assert_eq!(route.timeout_us, Some(500_000));
    assert_eq!(route.retry.as_ref().map(|r| r.attempts), Some(2));
    assert_eq!(
        productpage.service_for_authority("reviews.bookinfo.svc.cluster.local:9080"),
        Some(2)
    );
}

#[test]
fn compiling_is_deterministic_and_leaves_unchanged_files_alone() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let output = compile_examples(first.path());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("(8 files written)"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    compile_examples(second.path());
    let (a, b) = (tree(first.path()), tree(second.path()));
    assert!(!a.is_empty());
    assert_eq!(a, b, "two compilations of one mesh differ");

    let modified = |dir: &Path| -> BTreeMap<String, std::time::SystemTime> {
        tree(dir)
            .keys()
            .map(|k| {
                let meta = std::fs::metadata(dir.join(k)).unwrap();
                (k.clone(), meta.modified().unwrap())
            })
            .collect()
    };
    let before = modified(first.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = compile_examples(first.path());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("(0 files written)"), "{stderr}");
    assert_eq!(
        modified(first.path()),
        before,
        "unchanged files were rewritten"
    );
    assert_eq!(tree(first.path()), a);
}

#[test]
fn a_changed_config_is_rewritten_and_no_temporary_file_is_left() {
    let out = tempfile::tempdir().unwrap();
    compile_examples(out.path());
    let reviews = out.path().join("bookinfo/reviews.json");
    let original = std::fs::read(&reviews).unwrap();
    std::fs::write(&reviews, b"{}").unwrap();
    let output = compile_examples(out.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("(1 file written)"), "{stderr}");
    assert_eq!(std::fs::read(&reviews).unwrap(), original);
    assert!(
        tree(out.path()).keys().all(|k| !k.ends_with('~')),
        "a temporary file was left behind"
    );
}

#[test]
fn a_mesh_with_errors_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.mesh"),
        "service cart { port 80 subset v1 { version = \"v1\" } }\nroute cart { rule r { split { cart.v1 50% } } }\n",
    )
    .unwrap();
    let output = run_meshc(&["compile", "broken.mesh", "-o", "out"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("E0005"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(
        !dir.path().join("out").exists(),
        "the output directory was created"
    );

    // An existing output directory is left exactly as it was.
    std::fs::create_dir(dir.path().join("existing")).unwrap();
    std::fs::write(dir.path().join("existing/keep.json"), "{}").unwrap();
    let output = run_meshc(&["compile", "broken.mesh", "-o", "existing"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(tree(&dir.path().join("existing")).len(), 1);
}

#[test]
fn compile_needs_an_output_directory_and_readable_paths() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run_meshc(&["compile", "."], dir.path()).status.code(),
        Some(2)
    );
    let missing = run_meshc(&["compile", "nowhere", "-o", "out"], dir.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(!dir.path().join("out").exists());
}
