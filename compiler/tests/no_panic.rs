//! The checker never panics: the fuzzer's regression inputs and line-level mutations of
//! every example and diagnostic case go through every stage and every renderer.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};

use mesh_compiler::fuzz_check;

fn mesh_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            mesh_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "mesh") || dir.ends_with("regressions") {
            out.push(path);
        }
    }
}

#[test]
fn regression_inputs_and_mutated_meshes_never_panic() {
    let mut files = Vec::new();
    for dir in [
        "../examples",
        "tests/diagnostics",
        "../lang/fuzz/regressions",
        "../lang/tests/corpus/valid",
    ] {
        mesh_files(Path::new(dir), &mut files);
    }
    files.sort();
    assert!(files.len() > 30);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for path in files {
        let src = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        fuzz_check(&src);
        let lines: Vec<&str> = src.lines().collect();
        for round in 0..100 {
            // Delete, duplicate or swap whole lines: keeps tokens intact, breaks structure
            // and references in ways the parser's own mutations do not.
            let mut mutated: Vec<&str> = lines.clone();
            for _ in 0..1 + next() % 3 {
                if mutated.is_empty() {
                    break;
                }
                let i = (next() % mutated.len() as u64) as usize;
                let j = (next() % mutated.len() as u64) as usize;
                match next() % 3 {
                    0 => {
                        mutated.remove(i);
                    }
                    1 => mutated.insert(j, mutated[i]),
                    _ => mutated.swap(i, j),
                }
            }
            let text = mutated.join("\n");
            if std::panic::catch_unwind(|| fuzz_check(&text)).is_err() {
                panic!("{} round {round} panicked on:\n{text}", path.display());
            }
        }
    }
}
