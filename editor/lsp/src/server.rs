//! The protocol layer: the `tower-lsp-server` [`LanguageServer`] implementation. It turns
//! notifications into workspace updates, requests into calls of the feature modules on the
//! current analysis, and sends diagnostics. Typing is debounced: a `didChange` schedules a
//! check after [`Config::debounce`](crate::state::Config) and the check runs only if no
//! other edit came in meanwhile. Requests always see the latest text (a stale analysis is
//! rebuilt before answering). The server runs with `concurrency_level(1)`, so messages
//! are handled in the order they arrive.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use crate::state::{Config, Publication, State};
use crate::workspace::normalize;
use crate::{actions, completion, format, hover, navigate, semantic, symbols};

/// The `RequestFailed` error code of the protocol.
const REQUEST_FAILED: i64 = -32803;

/// The language server.
#[derive(Debug)]
pub struct Server {
    client: Client,
    state: Arc<Mutex<State>>,
}

impl Server {
    /// A server talking to `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    async fn publish(&self, publications: Vec<Publication>) {
        publish(&self.client, publications).await;
    }

    /// Runs `f` on the analysis of the file at `uri` with the byte offset of `position`.
    fn with_file<T>(
        &self,
        uri: &Uri,
        position: Option<Position>,
        f: impl FnOnce(&crate::analysis::Analysis, mesh_compiler::load::FileId, usize) -> T,
    ) -> Option<T> {
        let path = path_of(uri)?;
        let (analysis, file) = self.state().analysis_of(&path)?;
        let offset = match position {
            Some(p) => analysis.file(file)?.lines.offset(p),
            None => 0,
        };
        Some(f(&analysis, file, offset))
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves consistent data (each update is one step).
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn publish(client: &Client, publications: Vec<Publication>) {
    for p in publications {
        client
            .publish_diagnostics(p.uri, p.diagnostics, p.version)
            .await;
    }
}

/// The normalized path of a `file:` URI.
pub fn path_of(uri: &Uri) -> Option<PathBuf> {
    if uri.scheme().as_str() != "file" {
        return None;
    }
    Some(normalize(&uri.to_file_path()?))
}

fn folders_of(params: &InitializeParams) -> Vec<PathBuf> {
    if let Some(folders) = &params.workspace_folders {
        return folders.iter().filter_map(|f| path_of(&f.uri)).collect();
    }
    #[allow(
        deprecated,
        reason = "clients without workspace folders send only root_uri"
    )]
    params
        .root_uri
        .as_ref()
        .and_then(path_of)
        .into_iter()
        .collect()
}

/// What the server offers.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "/".into(), "[".into()]),
            ..CompletionOptions::default()
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        workspace_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..CodeActionOptions::default()
        })),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: semantic::legend(),
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                work_done_progress_options: WorkDoneProgressOptions::default(),
            },
        )),
        workspace: Some(WorkspaceServerCapabilities {
            workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                supported: Some(true),
                change_notifications: Some(OneOf::Left(true)),
            }),
            file_operations: None,
        }),
        ..ServerCapabilities::default()
    }
}

impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let problems = {
            let mut state = self.state();
            state.config = Config::from_options(params.initialization_options.as_ref());
            let mut problems = Vec::new();
            for folder in folders_of(&params) {
                problems.extend(state.workspace.add_folder(&folder));
            }
            state.invalidate_all();
            problems
        };
        for problem in problems {
            self.client.log_message(MessageType::WARNING, problem).await;
        }
        Ok(InitializeResult {
            capabilities: capabilities(),
            server_info: Some(ServerInfo {
                name: "mesh-lsp".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let watch = Registration {
            id: "mesh-files".into(),
            method: "workspace/didChangeWatchedFiles".into(),
            register_options: serde_json::to_value(DidChangeWatchedFilesRegistrationOptions {
                watchers: vec![FileSystemWatcher {
                    glob_pattern: GlobPattern::String("**/*.mesh".into()),
                    kind: None,
                }],
            })
            .ok(),
        };
        // Clients without dynamic registration refuse; open buffers still work then. Not
        // awaited here: with one message at a time, waiting for the client's answer would
        // hold up every message behind it.
        let client = self.client.clone();
        tokio::spawn(async move {
            let _ = client.register_capability(vec![watch]).await;
        });
        let publications = self.state().publications();
        self.publish(publications).await;
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else {
            return;
        };
        let publications = {
            let mut state = self.state();
            let doc = params.text_document;
            state.workspace.open(&path, doc.text, doc.version);
            state.invalidate(&path);
            state.publications()
        };
        self.publish(publications).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else {
            return;
        };
        let (ticket, delay) = {
            let mut state = self.state();
            let Some(buffer) = state.workspace.buffer_mut(&path) else {
                return;
            };
            for change in params.content_changes {
                buffer.text = match change.range {
                    Some(range) => crate::text::apply_change(&buffer.text, range, &change.text),
                    None => change.text,
                };
            }
            buffer.version = params.text_document.version;
            state.invalidate(&path);
            state.edits += 1;
            (state.edits, state.config.debounce)
        };
        let state = Arc::clone(&self.state);
        let client = self.client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let publications = {
                let mut state = lock(&state);
                if state.edits != ticket {
                    return; // more typing followed; its own check will run
                }
                state.publications()
            };
            publish(&client, publications).await;
        });
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else {
            return;
        };
        let publications = {
            let mut state = self.state();
            let _ = state.workspace.reload(&path);
            state.invalidate(&path);
            state.publications()
        };
        self.publish(publications).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let Some(path) = path_of(&params.text_document.uri) else {
            return;
        };
        let publications = {
            let mut state = self.state();
            state.invalidate(&path);
            state.workspace.close(&path);
            state.invalidate(&path);
            state.publications()
        };
        self.publish(publications).await;
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        let publications = {
            let mut state = self.state();
            for change in params.changes {
                let Some(path) = path_of(&change.uri) else {
                    continue;
                };
                if state.workspace.buffer(&path).is_some() {
                    continue; // the buffer wins; its save will reload
                }
                if change.typ == FileChangeType::DELETED {
                    state.workspace.forget(&path);
                } else {
                    let _ = state.workspace.reload(&path);
                }
                state.invalidate(&path);
            }
            state.publications()
        };
        self.publish(publications).await;
    }

    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        let publications = {
            let mut state = self.state();
            for removed in &params.event.removed {
                if let Some(path) = path_of(&removed.uri) {
                    state.workspace.remove_folder(&path);
                }
            }
            for added in &params.event.added {
                if let Some(path) = path_of(&added.uri) {
                    state.workspace.add_folder(&path);
                }
            }
            state.invalidate_all();
            state.publications()
        };
        self.publish(publications).await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let p = params.text_document_position_params;
        Ok(self
            .with_file(&p.text_document.uri, Some(p.position), hover::hover)
            .flatten())
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let p = params.text_document_position_params;
        let locations = self
            .with_file(&p.text_document.uri, Some(p.position), navigate::definition)
            .unwrap_or_default();
        Ok((!locations.is_empty()).then_some(GotoDefinitionResponse::Array(locations)))
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let p = params.text_document_position;
        let include = params.context.include_declaration;
        Ok(
            self.with_file(&p.text_document.uri, Some(p.position), |a, f, o| {
                navigate::references(a, f, o, include)
            }),
        )
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        let answer = self.with_file(
            &params.text_document.uri,
            Some(params.position),
            navigate::prepare_rename,
        );
        match answer {
            None => Ok(None),
            Some(Ok((range, placeholder))) => {
                Ok(Some(PrepareRenameResponse::RangeWithPlaceholder {
                    range,
                    placeholder,
                }))
            }
            Some(Err(err)) => Err(request_failed(err.to_string())),
        }
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let p = params.text_document_position;
        let new_name = params.new_name;
        match self.with_file(&p.text_document.uri, Some(p.position), |a, f, o| {
            navigate::rename(a, f, o, &new_name)
        }) {
            None => Ok(None),
            Some(Ok(edit)) => Ok(Some(edit)),
            Some(Err(err)) => Err(request_failed(err.to_string())),
        }
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let p = params.text_document_position;
        Ok(self
            .with_file(&p.text_document.uri, Some(p.position), completion::complete)
            .map(CompletionResponse::Array))
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        Ok(self
            .with_file(&params.text_document.uri, None, |a, f, _| {
                symbols::document_symbols(a, f)
            })
            .map(DocumentSymbolResponse::Nested))
    }

    async fn symbol(
        &self,
        params: WorkspaceSymbolParams,
    ) -> Result<Option<WorkspaceSymbolResponse>> {
        let analyses = self.state().all_analyses();
        let found = analyses
            .iter()
            .flat_map(|a| symbols::workspace_symbols(a, &params.query))
            .collect();
        Ok(Some(WorkspaceSymbolResponse::Nested(found)))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let Some(path) = path_of(&params.text_document.uri) else {
            return Ok(None);
        };
        let text = self.state().workspace.text(&path).map(str::to_string);
        Ok(text.and_then(|t| format::format(&t)))
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let catalog = self.state().config.catalog.clone();
        let range = params.range;
        let actions = self.with_file(&params.text_document.uri, None, |a, f, _| {
            let span = a.file(f).map(|i| i.lines.span(range)).unwrap_or_default();
            actions::quick_fixes(a, f, span, &catalog)
        });
        Ok(actions.map(|list| {
            list.into_iter()
                .map(CodeActionOrCommand::CodeAction)
                .collect()
        }))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        Ok(self
            .with_file(&params.text_document.uri, None, |a, f, _| {
                semantic::tokens(a, f)
            })
            .map(|data| {
                SemanticTokensResult::Tokens(SemanticTokens {
                    result_id: None,
                    data,
                })
            }))
    }
}

fn request_failed(message: String) -> Error {
    Error {
        code: ErrorCode::ServerError(REQUEST_FAILED),
        message: message.into(),
        data: None,
    }
}
