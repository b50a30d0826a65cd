//! Rendering diagnostics for people: miette's graphical output, in colour only when the
//! output is a terminal and `NO_COLOR` is unset.

use mesh_lang::diagnostic::render_with;
use mesh_lang::{Diagnostic, SourceFile};
use miette::{GraphicalReportHandler, GraphicalTheme};

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

/// Renders `diagnostics` of one file.
pub fn render(diagnostics: &[Diagnostic], source: &SourceFile, style: Style) -> String {
    render_with(diagnostics, source, style.handler())
}
