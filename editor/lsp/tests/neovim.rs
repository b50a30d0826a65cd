//! A real editor as the client: headless Neovim (with `editor/nvim` on its runtime path,
//! exactly as users install it) opens a copy of the bookinfo example with an error on a
//! line with non-ASCII text, attaches `mesh-lsp` through its built-in LSP client, and the
//! diagnostics Neovim received are checked (code, line, column). Skipped with a message
//! when `nvim` is not installed; `.ci/run` installs it.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn has_nvim() -> bool {
    Command::new("nvim")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn neovim_shows_the_servers_diagnostics() {
    if !has_nvim() {
        eprintln!("SKIPPED: `nvim` is not installed (apt-get install neovim); .ci/run installs it");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let example = std::fs::read_to_string(repo.join("examples/bookinfo/bookinfo.mesh")).unwrap();
    let broken = example.replacen(
        "      to reviews.v2",
        "      /* ünï 🦀 */ to reviews.v22",
        1,
    );
    assert_ne!(broken, example, "the example changed: update this test");
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let file = root.join("bookinfo.mesh");
    std::fs::write(&file, &broken).unwrap();
    let out = root.join("diagnostics.json");
    let script = root.join("test.lua");
    std::fs::write(
        &script,
        format!(
            r#"
require("mesh_lsp").setup({{ cmd = {{ {bin:?} }} }})
vim.cmd("edit " .. vim.fn.fnameescape({file:?}))
local ok = vim.wait(20000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local found = {{}}
for _, d in ipairs(vim.diagnostic.get(0)) do
  local code = d.code
  if code == nil and d.user_data and d.user_data.lsp then code = d.user_data.lsp.code end
  table.insert(found, {{ code = code, lnum = d.lnum, col = d.col, severity = d.severity }})
end
local result = {{ filetype = vim.bo.filetype, waited = ok, diagnostics = found }}
vim.fn.writefile({{ vim.fn.json_encode(result) }}, {out:?})
vim.cmd("qa!")
"#,
            bin = env!("CARGO_BIN_EXE_mesh-lsp"),
            file = file.display().to_string(),
            out = out.display().to_string(),
        ),
    )
    .unwrap();
    let runtime = repo.join("editor/nvim");
    let mut child = Command::new("nvim")
        .args(["--headless", "--clean", "--cmd"])
        .arg(format!("set rtp^={}", runtime.display()))
        .arg("-c")
        .arg(format!("luafile {}", script.display()))
        .current_dir(&root)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nvim did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("nvim wrote no result"))
            .unwrap();
    eprintln!("neovim reported: {result}");
    assert_eq!(result["filetype"], "mesh", "{result}");
    assert_eq!(result["waited"], true, "no diagnostics arrived: {result}");
    let line = broken
        .lines()
        .position(|l| l.contains("reviews.v22"))
        .unwrap();
    // Neovim converts the server's UTF-16 column to a byte column.
    let col = broken.lines().nth(line).unwrap().find("v22").unwrap();
    let diagnostics = result["diagnostics"].as_array().unwrap();
    assert!(
        diagnostics.iter().any(|d| d["code"] == "E0002"
            && d["lnum"] == line
            && d["col"] == col
            && d["severity"] == 1),
        "expected E0002 at {line}:{col}, got {result}"
    );
}
