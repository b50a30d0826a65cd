//! `deploy/image/Containerfile` against what it must hold, since images cannot be built
//! or pulled where the tests run: every binary it copies is one the workspace builds and
//! the build step names, its entrypoint and user are the ones the manifests assume, and
//! every container `meshc manifests --injector` and `meshc inject` write runs a binary
//! of the image with a subcommand that binary has.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use mesh_test_support::{binary, run_meshc, workspace_root as root};
use serde_json::Value;

fn containerfile() -> String {
    std::fs::read_to_string(root().join("deploy/image/Containerfile")).unwrap()
}

/// The binaries the final stage copies into `/usr/local/bin`.
fn copied_binaries(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("COPY --from=build /src/target/release/"))
        .map(|l| {
            let target = l.split_whitespace().last().unwrap();
            let name = target.rsplit('/').next().unwrap().to_string();
            assert_eq!(target, format!("/usr/local/bin/{name}"), "{l}");
            name
        })
        .collect()
}

#[test]
fn the_image_copies_what_the_build_step_builds() {
    let text = containerfile();
    let binaries = copied_binaries(&text);
    assert_eq!(binaries, ["mesh-agent", "meshc"]);
    for name in &binaries {
        assert!(
            text.contains(&format!("--bin {name}")),
            "the build step does not build {name}"
        );
        // The workspace has this binary: the test harness built it.
        assert!(binary(name).is_file());
    }
    assert!(
        text.contains("-p mesh-agent --features kubernetes"),
        "the agent in a cluster discovers endpoints through the API"
    );
    assert!(text.contains("ENTRYPOINT [\"mesh-agent\"]"));
    assert!(
        text.contains(&format!(
            "USER {uid}:{uid}",
            uid = mesh_kube::inject::PROXY_UID
        )),
        "the image's user is the uid capture rules leave alone"
    );
    assert!(
        text.contains(&format!("-t {}", mesh_kube::inject::DEFAULT_IMAGE)),
        "the documented tag is the manifests' default image"
    );
}

/// Every container of a pod spec (init containers included) with the image `image`.
fn containers<'v>(pod_spec: &'v Value, image: &str, out: &mut Vec<&'v Value>) {
    for list in ["initContainers", "containers"] {
        for container in pod_spec[list].as_array().into_iter().flatten() {
            if container["image"] == image {
                out.push(container);
            }
        }
    }
}

/// `BINARY SUBCOMMAND --help` works, for containers whose first argument is a
/// subcommand (not a flag).
fn runs(container: &Value) {
    let binaries = copied_binaries(&containerfile());
    let command: Vec<String> =
        serde_json::from_value(container["command"].clone()).unwrap_or_default();
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap_or_default();
    let program = command
        .first()
        .cloned()
        .unwrap_or_else(|| "mesh-agent".into());
    assert!(
        binaries.contains(&program),
        "{program} is not in the image: {container}"
    );
    let mut check = Command::new(binary(&program));
    match args.first().filter(|a| !a.starts_with('-')) {
        Some(subcommand) => check.args([subcommand.as_str(), "--help"]),
        None => check.arg("--help"),
    };
    let output = check.output().unwrap();
    assert!(output.status.success(), "{container}: {output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    // Every flag the container passes is one the (sub)command documents.
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag.as_str()),
            "{program} does not take {flag}: {container}"
        );
    }
}

#[test]
fn every_container_the_manifests_write_runs_a_subcommand_of_the_image() {
    let image = "mesh-agent:image-test";
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    mesh_identity::Ca::generate("image test CA")
        .unwrap()
        .write(&ca)
        .unwrap();
    let output = run_meshc(
        &[
            "manifests",
            "examples",
            "--injector",
            "--image",
            image,
            "--ca",
            ca.to_str().unwrap(),
            "-o",
            "-",
        ],
        &root(),
    );
    assert!(output.status.success(), "{output:?}");
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let mut found = Vec::new();
    for document in &documents {
        if document["kind"] == "Deployment" {
            containers(&document["spec"]["template"]["spec"], image, &mut found);
        }
    }

    // And the sidecar and init container `meshc inject` adds, in both modes.
    let injected = inject(image, "capture");
    let proxy_env = inject(image, "proxy-env");
    for document in injected.iter().chain(&proxy_env) {
        if document["kind"] == "Deployment" {
            containers(&document["spec"]["template"]["spec"], image, &mut found);
        }
    }
    let names: std::collections::BTreeSet<&str> =
        found.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in ["webhook", "mesh-agent", "mesh-init"] {
        assert!(
            names.contains(expected),
            "no {expected} container: {names:?}"
        );
    }
    for container in found {
        runs(container);
    }
}

fn inject(image: &str, mode: &str) -> Vec<Value> {
    let manifest = root().join("examples/bookinfo/kubernetes/bookinfo.yaml");
    let mut child = Command::new(mesh_test_support::meshc())
        .args([
            "inject",
            "-",
            "--mesh",
            "examples/bookinfo",
            "--image",
            image,
        ])
        .args(["--mode", mode])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(Path::new(&manifest)).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_saphyr::from_multiple(&String::from_utf8(output.stdout).unwrap()).unwrap()
}
