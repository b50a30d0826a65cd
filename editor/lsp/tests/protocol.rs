//! The real `mesh-lsp` binary over stdio, driven the way an editor drives it: initialize,
//! open, type an error and fix it (with non-ASCII text before the error, so UTF-16
//! columns matter), hover, definition, references, rename, completion, formatting,
//! symbols, semantic tokens, quick fixes, shutdown.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

use std::path::{Path, PathBuf};

use mesh_test_support::lsp::{Client, uri};
use serde_json::{Value, json};

const SHOP: &str = r#"// Größe ünïcödé 🦀
import "std/retry"

namespace shop {
  /// The shopping cart.
  service cart {
    port http 8080
    subset v1 { version = "v1" }
    subset v2 { version = "v2" }
  }

  service web { port http 8080 }

  /// Careful retries for the cart.
  retry careful {
    attempts 3
    per_try_timeout 250ms
    on [5xx, reset]
  }

  route cart {
    timeout 2s
    retry careful
    rule beta when header("x-beta") == "1" {
      /* é🦀 */ to cart.v2
    }
    rule rest {
      split { cart.v1 90%  cart.v2 10% }
    }
  }
}
"#;

const CALLERS: &str = r#"namespace shop {
  policy cart {
    allow from web { methods [GET] }
  }
  route web {
    retry idempotent
    rule all { to web }
  }
  test "web reaches the cart" {
    request GET "/" from web to cart header "x-beta" = "1"
    expect allow, rule beta, backend cart.v2
  }
}
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    shop: PathBuf,
    callers: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let shop = root.join("shop.mesh");
    let callers = root.join("callers.mesh");
    std::fs::write(&shop, SHOP).unwrap();
    std::fs::write(&callers, CALLERS).unwrap();
    Fixture {
        _dir: dir,
        root,
        shop,
        callers,
    }
}

fn start(root: &Path) -> Client {
    let mut client = Client::start(env!("CARGO_BIN_EXE_mesh-lsp"));
    let init = client.initialize(root, json!({"debounceMs": 5}));
    let caps = &init["capabilities"];
    for cap in [
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "renameProvider",
        "completionProvider",
        "documentFormattingProvider",
        "documentSymbolProvider",
        "workspaceSymbolProvider",
        "semanticTokensProvider",
        "codeActionProvider",
    ] {
        assert!(!caps[cap].is_null(), "missing capability {cap}: {caps}");
    }
    assert_eq!(caps["positionEncoding"], "utf-16");
    client
}

/// The (line, UTF-16 column) of the first occurrence of `needle` after `after`.
fn pos(text: &str, after: &str, needle: &str) -> (u32, u32) {
    let start = text.find(after).unwrap_or_else(|| panic!("no {after:?}"));
    let at = start
        + text[start..]
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?}"));
    let line = text[..at].matches('\n').count() as u32;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..at].encode_utf16().count() as u32)
}

fn position(text: &str, after: &str, needle: &str) -> Value {
    let (line, character) = pos(text, after, needle);
    json!({"line": line, "character": character})
}

fn open(client: &mut Client, path: &Path, text: &str) {
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri(path), "languageId": "mesh", "version": 1, "text": text}}),
    );
}

fn change(client: &mut Client, path: &Path, version: i32, text: &str) {
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri(path), "version": version}, "contentChanges": [{"text": text}]}),
    );
}

#[test]
fn an_error_typed_and_fixed_is_published_and_cleared_with_utf16_columns() {
    let f = fixture();
    let mut client = start(&f.root);
    open(&mut client, &f.shop, SHOP);
    // Type an unknown subset after `/* é🦀 */` (bytes, chars and UTF-16 units all differ).
    let broken = SHOP.replace("/* é🦀 */ to cart.v2", "/* é🦀 */ to cart.v9");
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri(&f.shop), "version": 2},
            "contentChanges": [{
                "range": {"start": position(SHOP, "é🦀 */", "v2"), "end": {"line": pos(SHOP, "é🦀 */", "v2").0, "character": pos(SHOP, "é🦀 */", "v2").1 + 2}},
                "text": "v9"
            }]
        }),
    );
    let shop_uri = uri(&f.shop);
    let diagnostics = client.diagnostics(&shop_uri, |d| !d.is_empty());
    let (line, column) = pos(&broken, "é🦀 */", "v9");
    let d = diagnostics
        .iter()
        .find(|d| d["code"] == "E0002")
        .unwrap_or_else(|| panic!("no E0002 in {diagnostics:?}"));
    assert_eq!(
        d["range"]["start"],
        json!({"line": line, "character": column})
    );
    assert_eq!(
        d["range"]["end"],
        json!({"line": line, "character": column + 2})
    );
    assert_eq!(d["severity"], 1);
    assert_eq!(d["source"], "meshc");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("has no subset `v9`")
    );
    assert!(
        d["codeDescription"]["href"]
            .as_str()
            .unwrap()
            .ends_with("DIAGNOSTICS.md#e0002-unknown-reference"),
        "{d}"
    );
    // The line has 4 non-ASCII bytes more than characters, and the crab is 2 UTF-16 units.
    let line_text = broken.lines().nth(line as usize).unwrap();
    let byte_col = line_text.find("v9").unwrap() as u32;
    assert_ne!(
        byte_col, column,
        "the fixture must make bytes and UTF-16 differ"
    );

    // Fixed: the file's diagnostics are cleared.
    change(&mut client, &f.shop, 3, SHOP);
    let cleared = client.diagnostics(&shop_uri, |d| d.is_empty());
    assert!(cleared.is_empty());
    client.shutdown();
}

#[test]
fn a_change_in_one_file_republishes_its_dependents() {
    let f = fixture();
    let mut client = start(&f.root);
    open(&mut client, &f.shop, SHOP);
    // Renaming `web` by hand breaks callers.mesh (not open: read from disk).
    change(
        &mut client,
        &f.shop,
        2,
        &SHOP.replace("service web", "service webb"),
    );
    let callers_uri = uri(&f.callers);
    let diagnostics = client.diagnostics(&callers_uri, |d| !d.is_empty());
    assert!(
        diagnostics.iter().all(|d| d["code"] == "E0002"),
        "{diagnostics:?}"
    );
    let first = &diagnostics[0];
    assert_eq!(
        first["range"]["start"],
        position(CALLERS, "allow from ", "web")
    );
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `webb`?")
    );
    // Undone: the dependent file is cleared.
    change(&mut client, &f.shop, 3, SHOP);
    client.diagnostics(&callers_uri, |d| d.is_empty());
    client.shutdown();
}

#[test]
fn a_label_in_another_file_is_related_information_with_that_files_uri() {
    let f = fixture();
    let mut client = start(&f.root);
    // A second route for `web`: the first is in callers.mesh, which sorts (and loads)
    // first, so the E0010 is in shop.mesh and its "first route" label in callers.mesh.
    let twice = SHOP.replace(
        "  route cart {",
        "  route web { timeout 1s }\n\n  route cart {",
    );
    open(&mut client, &f.shop, &twice);
    let shop_uri = uri(&f.shop);
    let diagnostics = client.diagnostics(&shop_uri, |d| d.iter().any(|d| d["code"] == "E0010"));
    let conflict = diagnostics.iter().find(|d| d["code"] == "E0010").unwrap();
    assert_eq!(
        conflict["range"]["start"],
        position(&twice, "route web", "web")
    );
    let related = conflict["relatedInformation"].as_array().unwrap();
    assert_eq!(related.len(), 1, "{conflict}");
    assert_eq!(related[0]["message"], "first route");
    assert_eq!(related[0]["location"]["uri"], uri(&f.callers));
    assert_eq!(
        related[0]["location"]["range"]["start"],
        position(CALLERS, "route web", "route")
    );
    client.shutdown();
}

#[test]
fn navigation_hover_rename_completion_and_formatting() {
    let f = fixture();
    let mut client = start(&f.root);
    open(&mut client, &f.shop, SHOP);
    open(&mut client, &f.callers, CALLERS);
    let shop = json!({"uri": uri(&f.shop)});
    let callers = json!({"uri": uri(&f.callers)});

    // Hover: signature and doc comment of a retry profile, at its use.
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": shop, "position": position(SHOP, "retry careful\n    rule", "careful")}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("retry careful { attempts 3; per_try_timeout 250ms; on [5xx, reset] }"),
        "{text}"
    );
    assert!(text.contains("Careful retries for the cart."), "{text}");
    // Hover on a literal and on header("x").
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": shop, "position": position(SHOP, "per_try_timeout", "250ms")}),
    );
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("Duration"),
        "{hover}"
    );
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": shop, "position": position(SHOP, "when ", "header")}),
    );
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("x-beta") && text.contains("header(\"x-beta\") == \"1\""),
        "{text}"
    );

    // Definition across files: `cart` in callers.mesh → the service in shop.mesh.
    let def = client.request(
        "textDocument/definition",
        json!({"textDocument": callers, "position": position(CALLERS, "policy ", "cart")}),
    );
    assert_eq!(def[0]["uri"], uri(&f.shop));
    assert_eq!(def[0]["range"]["start"], position(SHOP, "service ", "cart"));
    // Definition of a rule named in a test.
    let def = client.request(
        "textDocument/definition",
        json!({"textDocument": callers, "position": position(CALLERS, "expect allow, rule ", "beta")}),
    );
    assert_eq!(def[0]["range"]["start"], position(SHOP, "rule ", "beta"));
    // Definition of an import: the imported file is bundled, so there is no location.
    // References of `cart`: definition + route + split ×2 + to + policy + test ×2.
    let refs = client.request(
        "textDocument/references",
        json!({"textDocument": shop, "position": position(SHOP, "service ", "cart"), "context": {"includeDeclaration": true}}),
    );
    let refs = refs.as_array().unwrap();
    let in_callers = refs.iter().filter(|r| r["uri"] == uri(&f.callers)).count();
    let in_shop = refs.iter().filter(|r| r["uri"] == uri(&f.shop)).count();
    assert_eq!((in_shop, in_callers), (5, 3), "{refs:?}");

    // Rename across files.
    let edit = client.request(
        "textDocument/rename",
        json!({"textDocument": callers, "position": position(CALLERS, "policy ", "cart"), "newName": "basket"}),
    );
    let changes = edit["changes"].as_object().unwrap();
    assert_eq!(changes[&uri(&f.shop)].as_array().unwrap().len(), 5);
    assert_eq!(changes[&uri(&f.callers)].as_array().unwrap().len(), 3);
    assert!(
        changes
            .values()
            .flat_map(|e| e.as_array().unwrap())
            .all(|e| e["newText"] == "basket")
    );
    // Refused on std items, with a clear message; refused for invalid names.
    let refused = client.request_raw(
        "textDocument/rename",
        json!({"textDocument": callers, "position": position(CALLERS, "retry ", "idempotent"), "newName": "x"}),
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("standard library"), "{refused}");
    let refused = client.request_raw(
        "textDocument/rename",
        json!({"textDocument": shop, "position": position(SHOP, "service ", "web"), "newName": "9 lives"}),
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a valid name")
    );

    // Completion after `to `: services and subsets.
    let typing = SHOP.replace("/* é🦀 */ to cart.v2", "/* é🦀 */ to ");
    change(&mut client, &f.shop, 2, &typing);
    let items = client.request(
        "textDocument/completion",
        json!({"textDocument": shop, "position": {"line": pos(&typing, "é🦀 */", "to ").0, "character": pos(&typing, "é🦀 */", "to ").1 + 3}}),
    );
    let labels: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    for wanted in ["cart", "cart.v1", "cart.v2", "web"] {
        assert!(labels.contains(&wanted), "{wanted} missing from {labels:?}");
    }
    change(&mut client, &f.shop, 3, SHOP);

    // Formatting: one edit producing what `meshc fmt` writes.
    let messy = "service   a {port http 80}\n";
    change(&mut client, &f.shop, 4, messy);
    let edits = client.request(
        "textDocument/formatting",
        json!({"textDocument": shop, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(
        edits[0]["newText"],
        mesh_lang::format_source(messy).unwrap()
    );
    change(&mut client, &f.shop, 5, SHOP);

    // Outline, workspace symbols, semantic tokens.
    let outline = client.request("textDocument/documentSymbol", json!({"textDocument": shop}));
    let ns = outline
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "shop")
        .unwrap();
    let children: Vec<&str> = ns["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["cart", "web", "careful", "route cart"]);
    let found = client.request("workspace/symbol", json!({"query": "crt"}));
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "cart"),
        "{found}"
    );
    let tokens = client.request(
        "textDocument/semanticTokens/full",
        json!({"textDocument": shop}),
    );
    assert!(tokens["data"].as_array().unwrap().len() > 50);

    // Quick fix for a misspelled subset.
    let typo = SHOP.replace("/* é🦀 */ to cart.v2", "/* é🦀 */ to cart.v11");
    change(&mut client, &f.shop, 6, &typo);
    let at = position(&typo, "é🦀 */ to cart.", "v11");
    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": shop, "range": {"start": at, "end": at}, "context": {"diagnostics": []}}),
    );
    let action = &actions[0];
    assert_eq!(action["kind"], "quickfix");
    let edits = &action["edit"]["changes"][uri(&f.shop)];
    assert_eq!(edits[0]["newText"], "v1", "{action}");
    assert_eq!(edits[0]["range"]["start"], at);
    client.shutdown();
}

#[test]
fn a_file_outside_the_workspace_is_checked_alone_and_cleared_on_close() {
    let f = fixture();
    let mut client = start(&f.root);
    let outside = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(outside.path())
        .unwrap()
        .join("alone.mesh");
    let text = "service alone { port http 70000 }\n";
    open(&mut client, &path, text);
    let diagnostics = client.diagnostics(&uri(&path), |d| !d.is_empty());
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0]["code"], "E0006");
    assert_eq!(
        diagnostics[0]["range"]["start"],
        position(text, "http ", "70000")
    );
    client.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": uri(&path)}}),
    );
    client.diagnostics(&uri(&path), |d| d.is_empty());
    client.shutdown();
}
