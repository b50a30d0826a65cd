//! The user guide (`docs/`, an mdBook) is tested like code:
//!
//! - every ```` ```mesh ```` block of the book is checked with `meshc check` (conventions
//!   in `docs/src/contributing.md`: `fails=CODE`, `warns=CODE`, `fragment`, `file=PATH`,
//!   and `excerpt` in the generated diagnostic pages only), and `meshc test` runs the
//!   `test` blocks of those that check;
//! - every local `meshc` command (check, fmt, test, explain, compile, identity,
//!   manifests, inject; not piped into `kubectl`) in a ```` ```sh ```` block runs, in a
//!   copy of `examples/` and `docs/examples/`, and exits as the page says (0 unless the
//!   line's comment says `exits N`);
//! - every relative link points at a page of the book and, with `#anchor`, at a heading
//!   of it; every page is in `SUMMARY.md`;
//! - the CLI reference (`meshc` and `mesh-agent` `--help`), the diagnostic catalog (from
//!   `compiler/DIAGNOSTICS.md` and the compiler's diagnostic cases) and the metric list
//!   are generated or compared here, so they cannot drift: `UPDATE_DOCS=1` rewrites the
//!   generated pages.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use mesh_e2e::{meshc, root};

/// Set to rewrite the generated pages instead of comparing them.
const UPDATE: &str = "UPDATE_DOCS";

/// The book's sources.
fn src() -> PathBuf {
    root().join("docs/src")
}

/// Every `.md` file below `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A fenced code block: where it starts (1-based line of the fence), its info string and
/// its text.
struct Block {
    line: usize,
    info: String,
    text: String,
}

/// The fenced code blocks of a Markdown text (backtick fences of three or more).
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, String, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|c| *c == '`').count();
        match &mut open {
            None if ticks >= 3 => {
                open = Some((
                    i + 1,
                    ticks,
                    trimmed[ticks..].trim().to_string(),
                    String::new(),
                ));
            }
            Some((_, fence, _, _)) if ticks >= *fence && trimmed[ticks..].trim().is_empty() => {
                let (line, _, info, text) = open.take().unwrap();
                out.push(Block { line, info, text });
            }
            Some((_, _, _, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    out
}

/// The lines of a Markdown text outside code blocks (code lines are blank, so line
/// numbers stay right).
fn outside_fences(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<usize> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|c| *c == '`').count();
        match fence {
            None if ticks >= 3 => {
                fence = Some(ticks);
                out.push(String::new());
            }
            Some(f) => {
                if ticks >= f && trimmed[ticks..].trim().is_empty() {
                    fence = None;
                }
                out.push(String::new());
            }
            None => out.push(line.to_string()),
        }
    }
    out
}

/// The Markdown text outside code blocks and inline code, line by line.
fn prose(markdown: &str) -> Vec<String> {
    outside_fences(markdown)
        .into_iter()
        .map(|line| {
            let mut text = String::new();
            let mut in_code = false;
            for c in line.chars() {
                if c == '`' {
                    in_code = !in_code;
                } else if !in_code {
                    text.push(c);
                }
            }
            text
        })
        .collect()
}

/// The diagnostics of `meshc check --format json PATH`: its exit code and each
/// finding's code and severity.
fn check(path: &Path) -> (i32, Vec<(String, String)>, String) {
    let out = Command::new(meshc())
        .args(["check", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "meshc check gave no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let findings = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let human = Command::new(meshc())
        .args(["check"])
        .arg(path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        findings,
        String::from_utf8_lossy(&human.stderr).into_owned(),
    )
}

/// What a ```` ```mesh ```` block's info string asks for.
#[derive(Default)]
struct MeshBlock {
    fragment: bool,
    excerpt: bool,
    fails: Vec<String>,
    warns: Vec<String>,
    /// A file of the repository the block must equal, byte for byte.
    file: Option<String>,
}

fn mesh_block(info: &str) -> Option<Result<MeshBlock, String>> {
    let mut parts = info.split(',').map(str::trim);
    if parts.next() != Some("mesh") {
        return None;
    }
    let mut block = MeshBlock::default();
    for part in parts {
        match part.split_once('=') {
            None if part == "fragment" => block.fragment = true,
            None if part == "excerpt" => block.excerpt = true,
            Some(("fails", codes)) => block.fails.extend(codes.split('+').map(str::to_string)),
            Some(("warns", codes)) => block.warns.extend(codes.split('+').map(str::to_string)),
            Some(("file", path)) => block.file = Some(path.to_string()),
            _ => return Some(Err(format!("unknown attribute `{part}`"))),
        }
    }
    Some(Ok(block))
}

#[test]
fn every_mesh_block_checks_as_it_says() {
    let prelude_path = root().join("docs/fragment-prelude.mesh");
    let prelude = std::fs::read_to_string(&prelude_path).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // The prelude alone is a clean mesh.
    let alone = dir.path().join("prelude");
    std::fs::create_dir(&alone).unwrap();
    std::fs::write(alone.join("prelude.mesh"), &prelude).unwrap();
    let (code, findings, human) = check(&alone);
    assert!(
        code == 0 && findings.iter().all(|(_, s)| s != "error"),
        "docs/fragment-prelude.mesh has errors:\n{human}"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    for page in markdown_files(&src()) {
        let generated = page.starts_with(src().join("diagnostics"));
        let text = std::fs::read_to_string(&page).unwrap();
        for block in blocks(&text) {
            let at = format!("{}:{}", rel(&page), block.line);
            let spec = match mesh_block(&block.info) {
                None => continue,
                Some(Err(e)) => {
                    failures.push(format!("{at}: {e}"));
                    continue;
                }
                Some(Ok(spec)) => spec,
            };
            if spec.excerpt {
                if !generated {
                    failures.push(format!(
                        "{at}: `excerpt` is only for the generated diagnostic pages; write a whole mesh or a `fragment`"
                    ));
                }
                continue;
            }
            if let Some(file) = &spec.file {
                let on_disk = std::fs::read_to_string(root().join(file)).unwrap_or_default();
                if on_disk != block.text {
                    failures.push(format!("{at}: the block is not the text of `{file}`"));
                }
            }
            checked += 1;
            let case = dir.path().join(format!("case{checked}"));
            std::fs::create_dir(&case).unwrap();
            std::fs::write(case.join("block.mesh"), &block.text).unwrap();
            if spec.fragment {
                std::fs::write(case.join("prelude.mesh"), &prelude).unwrap();
            }
            let (code, findings, human) = check(&case);
            let has = |c: &str| findings.iter().any(|(f, _)| f == c);
            let errors: Vec<&str> = findings
                .iter()
                .filter(|(_, s)| s == "error")
                .map(|(c, _)| c.as_str())
                .collect();
            let warnings: BTreeSet<&str> = findings
                .iter()
                .filter(|(_, s)| s == "warning")
                .map(|(c, _)| c.as_str())
                .collect();
            let problem = if !spec.fails.is_empty() {
                let missing: Vec<&String> = spec.fails.iter().filter(|c| !has(c)).collect();
                if code != 1 || !missing.is_empty() {
                    Some(format!(
                        "expected to fail with {:?}, exit {code}",
                        spec.fails
                    ))
                } else {
                    None
                }
            } else if code != 0 || !errors.is_empty() {
                Some(format!("expected no errors, exit {code}"))
            } else if spec.fragment {
                // The prelude's unused subsets warn; a fragment declares only errors.
                None
            } else {
                let declared: BTreeSet<&str> = spec.warns.iter().map(String::as_str).collect();
                (declared != warnings)
                    .then(|| format!("expected warnings {declared:?}, got {warnings:?}"))
            };
            if let Some(problem) = problem {
                failures.push(format!("{at}: {problem}\n{}\n{human}", block.text));
                continue;
            }
            // A mesh that checks and has tests must pass them: the pages' claims about
            // routing and authorization are written as tests.
            if spec.fails.is_empty() && block.text.contains("test \"") {
                let out = Command::new(meshc())
                    .arg("test")
                    .arg(&case)
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap();
                if !out.status.success() {
                    failures.push(format!(
                        "{at}: meshc test fails\n{}\n{}{}",
                        block.text,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no mesh blocks found");
    assert!(
        failures.is_empty(),
        "{} of {checked} mesh blocks do not check as their pages say:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The subcommands of `meshc` that run locally, without root, a cluster or a running
/// mesh; the docs test runs every such command it finds (but not a pipeline into
/// `kubectl`, which needs a cluster).
const LOCAL: [&str; 10] = [
    "graph",
    "import",
    "check",
    "fmt",
    "test",
    "explain",
    "compile",
    "identity",
    "manifests",
    "inject",
];

/// Logical lines of a shell block: `\` continuations joined, blank lines dropped.
fn shell_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        if !current.trim().is_empty() {
            out.push(current.trim().to_string());
        }
        current.clear();
    }
    out
}

/// The exit code a command line's comment announces (`# exits 1`), else 0.
fn expected_exit(line: &str) -> i32 {
    line.rsplit_once(" # ")
        .and_then(|(_, comment)| {
            let rest = comment.split("exits ").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn every_local_meshc_command_runs() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&root().join("examples"), &work.path().join("examples"));
    copy_dir(
        &root().join("docs/examples"),
        &work.path().join("docs/examples"),
    );
    // The Istio objects the import page's example reads.
    for fixture in [
        "destination-rule-all.yaml",
        "test-v2/virtual-service-reviews-test-v2.yaml",
    ] {
        let from = root().join("import/tests/fixtures").join(fixture);
        std::fs::copy(&from, work.path().join(from.file_name().unwrap())).unwrap();
    }
    let bin = meshc().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    let mut ran = 0;
    for page in markdown_files(&src()) {
        let text = std::fs::read_to_string(&page).unwrap();
        for block in blocks(&text) {
            if block.info.split(',').next() != Some("sh") {
                continue;
            }
            for line in shell_lines(&block.text) {
                let mut words = line.split_whitespace();
                if words.next() != Some("meshc")
                    || !words.next().is_some_and(|w| LOCAL.contains(&w))
                    || line.contains("kubectl")
                {
                    continue;
                }
                ran += 1;
                let want = expected_exit(&line);
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(&line)
                    .current_dir(work.path())
                    .env("PATH", &path)
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap();
                let got = out.status.code().unwrap_or(-1);
                if got != want {
                    failures.push(format!(
                        "{}:{}: `{line}` exited {got}, the page says {want}\n{}{}",
                        rel(&page),
                        block.line,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
    }
    assert!(ran > 0, "no meshc commands found");
    assert!(
        failures.is_empty(),
        "{} of {ran} commands failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// mdBook's id of a heading: its text lower-cased, whitespace as `-`, other punctuation
/// than `-` and `_` dropped.
fn heading_id(heading: &str) -> String {
    // The text of links and inline code, without their markup.
    let mut text = String::new();
    let mut chars = heading.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' | '[' | '*' => {}
            ']' if chars.peek() == Some(&'(') => {
                for c in chars.by_ref() {
                    if c == ')' {
                        break;
                    }
                }
            }
            ']' => {}
            c => text.push(c),
        }
    }
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a page: its headings' ids (repeats get `-1`, `-2`, … as in mdBook).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in outside_fences(markdown) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let id = heading_id(&line[hashes..]);
        let n = seen.entry(id.clone()).or_default();
        out.insert(if *n == 0 {
            id.clone()
        } else {
            format!("{id}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of the inline links `[text](target)` of a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        out.push(after[..end].trim().to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_link_resolves_and_every_page_is_in_the_summary() {
    let src = src();
    let pages = markdown_files(&src);
    let mut failures = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for (i, line) in prose(&text).iter().enumerate() {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let at = format!("{}:{}", rel(page), i + 1);
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let file = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                let Ok(file) = file.canonicalize() else {
                    failures.push(format!("{at}: `{target}` does not exist"));
                    continue;
                };
                if !file.starts_with(src.canonicalize().unwrap()) {
                    failures.push(format!(
                        "{at}: `{target}` is outside the book (docs/src); mdBook would not publish it"
                    ));
                    continue;
                }
                if let Some(anchor) = anchor {
                    let target_text = std::fs::read_to_string(&file).unwrap_or_default();
                    if !anchors(&target_text).contains(anchor) {
                        failures.push(format!("{at}: `{target}`: no heading has id `{anchor}`"));
                    }
                }
            }
        }
    }

    // Every page is reachable from the summary (mdBook leaves the others out).
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<PathBuf> = prose(&summary)
        .iter()
        .flat_map(|l| link_targets(l))
        .map(|t| src.join(t))
        .collect();
    for page in &pages {
        if page.file_name().is_some_and(|n| n == "SUMMARY.md") {
            continue;
        }
        if !listed.contains(page) {
            failures.push(format!("{} is not in SUMMARY.md", rel(page)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compares a generated page with the one on disk, or rewrites it with `UPDATE_DOCS=1`.
fn compare_or_update(path: &Path, want: &str, failures: &mut Vec<String>) {
    let have = std::fs::read_to_string(path).unwrap_or_default();
    if have == want {
        return;
    }
    if std::env::var_os(UPDATE).is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, want).unwrap();
        return;
    }
    let line = have
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
    failures.push(format!(
        "{} is out of date (first difference at line {}): regenerate it with \
         `UPDATE_DOCS=1 cargo test -p mesh-e2e --test docs`",
        rel(path),
        line + 1
    ));
}

const GENERATED: &str = "<!-- Generated by tests/tests/docs.rs; edit the source, then run \
`UPDATE_DOCS=1 cargo test -p mesh-e2e --test docs`. -->";

/// `BIN ARGS... --help`.
fn help(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .arg("--help")
        .env_remove("MESH_AGENT_THREADS")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} --help failed",
        bin.display()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// One section per command and subcommand of `bin`, depth first.
fn help_sections(bin: &Path, name: &str, args: &mut Vec<String>, out: &mut String) {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = help(bin, &argv);
    let title = std::iter::once(name)
        .chain(argv.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    writeln!(out, "\n## `{title}`\n\n```text\n{}```", text).unwrap();
    for sub in subcommands(&text) {
        args.push(sub);
        help_sections(bin, name, args, out);
        args.pop();
    }
}

#[test]
fn the_cli_reference_is_the_binaries_help() {
    let meshc = meshc();
    let agent = meshc.parent().unwrap().join("mesh-agent");
    let mut failures = Vec::new();
    for (bin, name, extra, page, title, intro) in [
        (
            &meshc,
            "meshc",
            &[][..],
            "reference/meshc.md",
            "`meshc` command line",
            "Every subcommand of `meshc`, as its `--help` prints it. Exit codes, for every \
             subcommand: `0` success, `1` the input has problems (errors, unformatted files, \
             failing tests), `2` usage or I/O problems.",
        ),
        (
            &agent,
            "mesh-agent",
            // `capture` is dispatched before clap parses, so `--help` does not list it.
            &["capture"][..],
            "reference/mesh-agent.md",
            "`mesh-agent` command line",
            "The sidecar's flags, as `mesh-agent --help` prints them. `meshc up` and `meshc \
             inject` choose them for you; you need this page when running an agent by hand \
             or reading an injected pod spec. What the agent does with them: \
             [the agent](agent.md).",
        ),
    ] {
        let mut want = format!("# {title}\n\n{GENERATED}\n\n{intro}\n");
        help_sections(bin, name, &mut Vec::new(), &mut want);
        for sub in extra {
            help_sections(bin, name, &mut vec![sub.to_string()], &mut want);
        }
        compare_or_update(&src().join(page), &want, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The catalog's sections: code, title and body.
fn catalog() -> (String, Vec<(String, String, String)>) {
    let text = std::fs::read_to_string(root().join("compiler/DIAGNOSTICS.md")).unwrap();
    let mut preamble = String::new();
    let mut sections: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let (code, title) = heading.split_once(' ').unwrap_or((heading, ""));
            sections.push((code.to_string(), title.to_string(), String::new()));
        } else if let Some((_, _, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        } else if !line.starts_with("# ") {
            preamble.push_str(line);
            preamble.push('\n');
        }
    }
    (preamble, sections)
}

#[test]
fn the_diagnostic_pages_are_the_catalog() {
    let (preamble, sections) = catalog();
    let cases_dir = root().join("compiler/tests/diagnostics");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mesh"))
        .collect();
    cases.sort();

    let mut failures = Vec::new();
    let dir = src().join("diagnostics");
    let mut index = format!(
        "# Diagnostics\n\n{GENERATED}\n{}\n| code | meaning |\n|---|---|\n",
        preamble.replace("`tests/diagnostics/`", "`compiler/tests/diagnostics/`")
    );
    for (code, title, body) in &sections {
        writeln!(index, "| [{code}]({code}.md) | {title} |").unwrap();
        let severity = if code.starts_with('E') {
            "error"
        } else {
            "warning"
        };
        // The catalog's snippets are excerpts; the complete cases below are checked.
        let body = body.replace("```mesh\n", "```mesh,excerpt\n");
        let mut page = format!(
            "# {code} {title}\n\n{GENERATED}\n\nSeverity: **{severity}**.\n\n{}",
            body.trim_start()
        );
        let attr = if severity == "error" {
            "fails"
        } else {
            "warns"
        };
        for case in cases.iter().filter(|c| {
            c.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{code}-")))
        }) {
            let text = std::fs::read_to_string(case).unwrap();
            let text: String = text
                .lines()
                .filter(|l| !l.starts_with("// expect:"))
                .map(|l| format!("{l}\n"))
                .collect();
            let name = case.file_stem().unwrap().to_str().unwrap();
            let name = name.strip_prefix(&format!("{code}-")).unwrap_or(name);
            write!(
                page,
                "\n### Example: {}\n\n`meshc check` reports {code} for this mesh:\n\n```mesh,{attr}={code}\n{text}```\n",
                name.replace('-', " ")
            )
            .unwrap();
        }
        compare_or_update(&dir.join(format!("{code}.md")), &page, &mut failures);
    }
    compare_or_update(&dir.join("README.md"), &index, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_metrics_page_lists_every_agent_metric() {
    let source = std::fs::read_to_string(root().join("agent/proxy/src/metrics.rs")).unwrap();
    let page = std::fs::read_to_string(src().join("reference/metrics.md")).unwrap();
    let mut registered = Vec::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find("register(") {
        rest = &rest[at + "register(".len()..];
        let trimmed = rest.trim_start();
        if let Some(name) = trimmed.strip_prefix('"').and_then(|s| s.split('"').next()) {
            registered.push(format!("mesh_{name}"));
        }
    }
    assert!(
        registered.len() > 10,
        "found only {registered:?} in metrics.rs"
    );
    let missing: Vec<&String> = registered
        .iter()
        .filter(|m| !page.contains(&format!("`{m}")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/src/reference/metrics.md does not describe {missing:?}"
    );
    // And the page names no metric the agent does not have.
    let unknown: Vec<String> = page
        .split('`')
        .filter(|w| w.starts_with("mesh_"))
        .map(|w| w.split('{').next().unwrap_or(w).to_string())
        .filter(|w| {
            !registered.iter().any(|r| {
                w == r
                    || w.strip_prefix(r.as_str())
                        .is_some_and(|s| ["_total", "_bucket", "_sum", "_count"].contains(&s))
            })
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/src/reference/metrics.md names metrics the agent does not have: {unknown:?}"
    );
}
