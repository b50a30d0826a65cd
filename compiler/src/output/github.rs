//! `--format github`: workflow commands that GitHub Actions turns into annotations.

use std::fmt::Write;

use crate::diag::Finding;
use crate::load::Loaded;

/// One `::error file=…,line=…::message` line per finding.
pub fn github(loaded: &Loaded, findings: &[Finding]) -> String {
    let mut out = String::new();
    for l in super::locate(loaded, findings) {
        let d = &l.finding.diagnostic;
        let command = match d.severity {
            mesh_lang::Severity::Error => "error",
            mesh_lang::Severity::Warning => "warning",
        };
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        let _ = writeln!(
            out,
            "::{command} file={},line={},col={},endLine={},endColumn={},title={}::{}",
            property(l.file),
            l.start.0,
            l.start.1,
            l.end.0,
            l.end.1,
            d.code,
            data(&message)
        );
    }
    out
}

/// Escapes a command's message.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command's property value.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}
