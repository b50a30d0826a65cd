//! Go to definition, find references and rename, over the [`Index`](crate::index::Index).
//! Rename covers services, subsets and retry profiles in every file of the mesh, and is
//! refused for what the bundled standard library defines (those files are not the user's).

use std::collections::HashMap;

use mesh_compiler::load::FileId;
use tower_lsp_server::ls_types::{Location, Range, TextEdit, Uri, WorkspaceEdit};

use crate::analysis::Analysis;
use crate::index::{Occurrence, Symbol};

/// Why a rename was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenameError {
    /// Nothing renamable at the cursor.
    #[error("nothing to rename here: place the cursor on a service, subset or retry profile name")]
    Nothing,
    /// A kind of symbol that rename does not cover.
    #[error(
        "renaming a {0} is not supported: only services, subsets and retry profiles can be renamed"
    )]
    Unsupported(&'static str),
    /// The symbol comes from `std/`.
    #[error(
        "`{0}` is defined in the bundled standard library (`std/`), which cannot be edited; define your own {1} instead"
    )]
    Std(String, &'static str),
    /// The new name is not an identifier.
    #[error(
        "`{0}` is not a valid name: names are letters, digits, `_` and `-`, starting with a letter or `_`"
    )]
    BadName(String),
}

fn location(analysis: &Analysis, file: FileId, span: mesh_lang::ast::Span) -> Option<Location> {
    let info = analysis.file(file)?;
    Some(Location::new(info.uri.clone()?, info.lines.range(span)))
}

/// The definition of what is at `offset`: the declaration of a symbol, or the file an
/// import names.
pub fn definition(analysis: &Analysis, file: FileId, offset: usize) -> Vec<Location> {
    let Some(occurrence) = analysis.index.at(file, offset) else {
        return Vec::new();
    };
    if let Symbol::File(target) = occurrence.symbol {
        return location(analysis, target, mesh_lang::ast::Span::new(0, 0))
            .into_iter()
            .collect();
    }
    analysis
        .index
        .occurrences_of(&occurrence.symbol)
        .filter(|o| o.is_def)
        .filter_map(|o| location(analysis, o.file, o.span))
        .collect()
}

/// Every place the symbol at `offset` is written.
pub fn references(
    analysis: &Analysis,
    file: FileId,
    offset: usize,
    include_declaration: bool,
) -> Vec<Location> {
    let Some(occurrence) = analysis.index.at(file, offset) else {
        return Vec::new();
    };
    analysis
        .index
        .occurrences_of(&occurrence.symbol)
        .filter(|o| include_declaration || !o.is_def)
        .filter_map(|o| location(analysis, o.file, o.span))
        .collect()
}

/// The renamable symbol at `offset` and the range of its name there.
pub fn prepare_rename(
    analysis: &Analysis,
    file: FileId,
    offset: usize,
) -> Result<(Range, String), RenameError> {
    let occurrence = renamable(analysis, file, offset)?;
    let info = analysis.file(file).ok_or(RenameError::Nothing)?;
    Ok((
        info.lines.range(occurrence.span),
        occurrence.symbol.name().to_string(),
    ))
}

fn renamable(analysis: &Analysis, file: FileId, offset: usize) -> Result<&Occurrence, RenameError> {
    let occurrence = analysis
        .index
        .at(file, offset)
        .ok_or(RenameError::Nothing)?;
    match &occurrence.symbol {
        Symbol::Service(..) | Symbol::Subset(..) | Symbol::Retry(..) => {}
        Symbol::File(_) => return Err(RenameError::Nothing),
        other => return Err(RenameError::Unsupported(other.kind())),
    }
    let is_std = analysis
        .index
        .definitions
        .get(&occurrence.symbol)
        .is_some_and(|d| d.is_std);
    if is_std {
        return Err(RenameError::Std(
            occurrence.symbol.name().to_string(),
            occurrence.symbol.kind(),
        ));
    }
    Ok(occurrence)
}

/// Whether `name` is an identifier of the language.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The edits renaming the symbol at `offset` to `new_name` in every file.
pub fn rename(
    analysis: &Analysis,
    file: FileId,
    offset: usize,
    new_name: &str,
) -> Result<WorkspaceEdit, RenameError> {
    if !is_identifier(new_name) {
        return Err(RenameError::BadName(new_name.to_string()));
    }
    let occurrence = renamable(analysis, file, offset)?;
    let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
    for o in analysis.index.occurrences_of(&occurrence.symbol) {
        let Some(info) = analysis.file(o.file) else {
            continue;
        };
        let Some(uri) = info.uri.clone() else {
            continue;
        };
        let edit = TextEdit::new(info.lines.range(o.span), new_name.to_string());
        let edits = changes.entry(uri).or_default();
        if !edits.contains(&edit) {
            edits.push(edit);
        }
    }
    Ok(WorkspaceEdit::new(changes))
}
