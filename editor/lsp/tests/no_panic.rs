//! Never crash on any input: the fuzzer's regression inputs, every corpus and diagnostic
//! fixture of the repository, and truncations of each (half-typed files) go through every
//! handler at many cursor positions.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

use std::path::{Path, PathBuf};

use mesh_compiler::load::FileId;
use mesh_lang::ast::Span;
use mesh_lsp::analysis::Analysis;
use mesh_lsp::{actions, completion, format, hover, navigate, semantic, symbols};
use tower_lsp_server::ls_types::Position;

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_none_or(|e| e == "mesh") {
            out.push(path);
        }
    }
}

fn inputs() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut paths = Vec::new();
    for dir in [
        "lang/fuzz/regressions",
        "lang/tests/corpus",
        "compiler/tests/diagnostics",
        "compiler/tests/valid",
        "examples",
        "policies",
    ] {
        collect(&root.join(dir), &mut paths);
    }
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        // Half-typed versions: the file cut at a few places.
        for cut in [text.len() / 3, text.len() / 2, text.len() * 4 / 5] {
            let mut cut = cut;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push((format!("{}@{cut}", path.display()), text[..cut].to_string()));
        }
        out.push((path.display().to_string(), text));
    }
    out
}

fn exercise(text: &str) {
    let analysis = Analysis::new(
        vec![(PathBuf::from("/fuzz/input.mesh"), text.to_string())],
        "",
    );
    let file = FileId(0);
    let info = analysis.file(file).unwrap();
    let _ = symbols::document_symbols(&analysis, file);
    let _ = symbols::workspace_symbols(&analysis, "a");
    let _ = semantic::tokens(&analysis, file);
    let _ = actions::quick_fixes(&analysis, file, Span::new(0, text.len()), "");
    let _ = format::format(text);
    // Every few bytes, and past the end.
    let step = (text.len() / 200).max(1);
    for offset in (0..=text.len() + 2).step_by(step) {
        let _ = hover::hover(&analysis, file, offset);
        let _ = navigate::definition(&analysis, file, offset);
        let _ = navigate::references(&analysis, file, offset, true);
        let _ = navigate::prepare_rename(&analysis, file, offset);
        let _ = navigate::rename(&analysis, file, offset, "renamed");
        let _ = completion::complete(&analysis, file, offset);
        let position = info.lines.position(offset);
        let _ = info.lines.offset(position);
    }
    // Positions a client might send for a stale or foreign text.
    for (line, character) in [(0, 0), (0, u32::MAX), (u32::MAX, 0), (7, 3)] {
        let offset = info.lines.offset(Position::new(line, character));
        assert!(offset <= text.len());
        let _ = completion::complete(&analysis, file, offset);
    }
}

#[test]
fn every_handler_survives_every_input() {
    let inputs = inputs();
    assert!(
        inputs
            .iter()
            .any(|(name, _)| name.contains("fuzz/regressions")),
        "the fuzzer's regression inputs were not found"
    );
    for (name, text) in &inputs {
        let outcome = std::panic::catch_unwind(|| exercise(text));
        assert!(outcome.is_ok(), "a handler panicked on {name}");
    }
}
