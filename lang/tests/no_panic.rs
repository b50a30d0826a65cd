//! No input makes the parser panic: the fuzzer's regression inputs are replayed, and every
//! corpus file is mutated thousands of times (deterministically) and parsed and formatted.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};

use mesh_lang::format::check_round_trip;

fn files_in(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn fuzzer_regression_inputs_do_not_panic() {
    let inputs = files_in("fuzz/regressions");
    assert!(!inputs.is_empty(), "no regression inputs found");
    for path in inputs {
        let bytes = std::fs::read(&path).unwrap();
        let src = String::from_utf8_lossy(&bytes);
        if let Err(problem) = check_round_trip(&src) {
            panic!("{}: {problem}", path.display());
        }
    }
}

/// xorshift64*: a tiny deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "\"",
    "r#\"",
    "\"#",
    "/*",
    "*/",
    "//",
    "///",
    "\n",
    " ",
    ",",
    ".",
    "..",
    "/",
    "=",
    "==",
    "&&",
    "||",
    "!",
    "%",
    "5xx",
    "9xx",
    "1.5",
    "10/s",
    "250ms",
    "\\u{",
    "\\",
    "é",
    "支",
    "rule",
    "when",
    "service",
    "route",
    "split",
    "to",
    "expect",
    "request",
    "from",
    "allow",
    "namespace",
    "header(",
    "in",
    "9999999999999999999999",
];

fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut text = src.to_string();
    for _ in 0..=rng.below(4) {
        let mut at = rng.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(4) {
            0 => text.insert_str(at, FRAGMENTS[rng.below(FRAGMENTS.len())]),
            1 => {
                let mut end = (at + rng.below(16)).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, "");
            }
            2 => text.truncate(at),
            _ => {
                let mut from = rng.below(text.len() + 1);
                while !text.is_char_boundary(from) {
                    from -= 1;
                }
                let mut to = (from + rng.below(40)).min(text.len());
                while !text.is_char_boundary(to) {
                    to -= 1;
                }
                let chunk = text[from..to].to_string();
                text.insert_str(at, &chunk);
            }
        }
    }
    text
}

#[test]
fn mutated_corpus_files_never_panic() {
    let mut files = files_in("tests/corpus/valid");
    files.extend(files_in("tests/corpus/invalid"));
    files.extend(files_in("tests/corpus/format"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for path in files {
        let src = std::fs::read_to_string(&path).unwrap();
        for round in 0..400 {
            let mutated = mutate(&mut rng, &src);
            let outcome = std::panic::catch_unwind(|| check_round_trip(&mutated));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(problem)) => panic!(
                    "{} round {round}: {problem}\ninput:\n{mutated}",
                    path.display()
                ),
                Err(_) => panic!(
                    "{} round {round}: panic on input:\n{mutated}",
                    path.display()
                ),
            }
        }
    }
}
