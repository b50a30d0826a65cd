//! The `.mesh` policy language front end: lexer, grammar, syntax tree, syntax
//! diagnostics and the canonical formatter.
//!
//! ```
//! let parsed = mesh_lang::parse("service reviews { port http 9080 }");
//! assert!(parsed.diagnostics.is_empty());
//! assert_eq!(parsed.file.items.len(), 1);
//! ```

pub mod ast;
pub mod diagnostic;
pub mod format;
pub mod lexer;
pub mod lines;
pub mod render;
mod syntax;

lalrpop_util::lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        unused
    )]
    grammar
);

pub use diagnostic::{Diagnostic, FileId, Label, Severity, SourceFile};
pub use format::{format_file, format_source};
pub use lines::LineIndex;
pub use syntax::{Parsed, SYNTAX_ERROR, parse};
