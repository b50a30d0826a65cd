//! Rendering diagnostics for people: miette's graphical output, in colour only when the
//! output is a terminal and `NO_COLOR` is unset. Labels are shown in their own files
//! (`mesh_lang::render`).

use mesh_lang::render::{render_files, render_with};
use mesh_lang::{Diagnostic, SourceFile};
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::diag::Finding;
use crate::load::Loaded;

/// How human-readable output should look.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
    /// Wrap at this many columns.
    pub width: usize,
}

impl Style {
    /// Colour when `is_tty` and `NO_COLOR` is not set; 100 columns.
    pub fn detect(is_tty: bool, no_color: bool) -> Style {
        Style {
            color: is_tty && !no_color,
            width: 100,
        }
    }

    /// The miette handler for this style.
    pub fn handler(self) -> GraphicalReportHandler {
        let theme = if self.color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        GraphicalReportHandler::new_themed(theme).with_width(self.width)
    }
}

/// Renders `diagnostics` of one file whose labels are all in that file.
pub fn render(diagnostics: &[Diagnostic], source: &SourceFile, style: Style) -> String {
    render_with(diagnostics, source, &style.handler())
}

/// Renders the findings of a loaded mesh file by file (in load order), each label in its
/// own file.
pub fn render_findings(loaded: &Loaded, findings: &[Finding], style: Style) -> String {
    let mut ordered: Vec<_> = findings.iter().map(|f| (f.file, &f.diagnostic)).collect();
    ordered.sort_by_key(|(file, _)| *file);
    render_files(
        &ordered,
        &|id| loaded.file(id).map(|f| &f.source),
        &style.handler(),
    )
}
