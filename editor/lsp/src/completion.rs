//! Completion from the cursor's context, read from the tokens before it (so it works in
//! half-typed code): the keywords of the enclosing block, service and subset names after
//! `to`, `from`, `mirror`, `backend` and inside `split`, retry profiles after `retry`,
//! condition attributes after `when`/`&&`/`||`, methods, status classes and retry
//! conditions in their lists, the optional parts of a `rate_limit` (`burst`, `per caller`,
//! `when`), the members of gateways, their hosts and `tls` blocks and of `telemetry`, and
//! the words of small vocabularies (`balance`, `mtls`, `access_log`, …).

use mesh_compiler::load::FileId;
use mesh_compiler::resolve::DEFAULT_NAMESPACE;
use mesh_lang::ast::CommentKind;
use mesh_lang::lexer::Token;
use tower_lsp_server::ls_types::{CompletionItem, CompletionItemKind, InsertTextFormat};

use crate::analysis::Analysis;
use crate::index::Symbol;
use crate::tokens::{Tok, lex};

/// HTTP methods.
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];
/// Status classes.
pub const STATUS_CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Named retry conditions.
pub const RETRY_CONDITIONS: &[&str] = &[
    "gateway_error",
    "reset",
    "connect_failure",
    "refused_stream",
];

/// Keywords that may start a member of each kind of block.
fn block_keywords(block: Block) -> &'static [&'static str] {
    match block {
        Block::Top => &[
            "mesh",
            "import",
            "namespace",
            "service",
            "retry",
            "route",
            "policy",
            "test",
            "gateway",
        ],
        Block::Namespace => &["service", "retry", "route", "policy", "test", "gateway"],
        Block::Mesh => &["trust_domain", "mtls", "default_policy", "telemetry"],
        Block::Telemetry => &["tracing", "access_log"],
        Block::Gateway => &["listen", "host", "identity"],
        Block::Host => &["rule"],
        Block::Tls => &["cert", "key"],
        Block::Service => &[
            "port", "identity", "labels", "subset", "balance", "limits", "outlier",
        ],
        Block::Limits => &["max_connections", "max_pending", "max_requests"],
        Block::Outlier => &[
            "consecutive_5xx",
            "interval",
            "base_ejection",
            "max_ejected",
        ],
        Block::Retry => &["attempts", "per_try_timeout", "on", "backoff", "budget"],
        Block::Route => &[
            "timeout",
            "retry",
            "connect_timeout",
            "idle_timeout",
            "rule",
            "to",
            "split",
        ],
        Block::Rule => &[
            "to",
            "split",
            "timeout",
            "retry",
            "mirror",
            "fault",
            "set_header",
            "remove_header",
            "rewrite_prefix",
        ],
        Block::Fault => &["delay", "abort"],
        Block::Policy => &["mode", "allow", "deny", "cedar", "rate_limit"],
        Block::Access => &["methods", "paths", "ports"],
        Block::Test => &["request", "connect", "expect"],
        Block::Split | Block::Labels | Block::Other => &[],
    }
}

/// The kind of block the cursor is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Top,
    Namespace,
    Mesh,
    Service,
    Retry,
    Route,
    Rule,
    Fault,
    Limits,
    Outlier,
    Policy,
    Access,
    Test,
    Split,
    Labels,
    Telemetry,
    Gateway,
    Host,
    Tls,
    Other,
}

fn opener(token: &Token<'_>) -> Option<Block> {
    Some(match token {
        Token::KwNamespace => Block::Namespace,
        Token::KwMesh => Block::Mesh,
        Token::KwService => Block::Service,
        Token::KwRetry => Block::Retry,
        Token::KwRoute => Block::Route,
        Token::KwRule => Block::Rule,
        Token::KwFault => Block::Fault,
        Token::KwLimits => Block::Limits,
        Token::KwOutlier => Block::Outlier,
        Token::KwPolicy => Block::Policy,
        Token::KwAllow | Token::KwDeny => Block::Access,
        Token::KwTest => Block::Test,
        Token::KwSplit => Block::Split,
        Token::KwLabels | Token::KwSubset => Block::Labels,
        Token::KwTelemetry => Block::Telemetry,
        Token::KwGateway => Block::Gateway,
        Token::KwHost => Block::Host,
        Token::KwTls => Block::Tls,
        _ => return None,
    })
}

/// Where the cursor is, lexically.
struct Context<'s> {
    /// The enclosing blocks, innermost last.
    blocks: Vec<Block>,
    /// Tokens before the word being typed.
    before: Vec<Tok<'s>>,
    /// The word being typed (letters, digits, `_`, `-`, `.`, `/`).
    word: &'s str,
    /// Whether the cursor sits in an open `[ ... ]` and after which keyword it opened.
    list_owner: Option<Token<'s>>,
    /// Namespace name when inside a `namespace` block.
    namespace: Option<&'s str>,
}

fn context(src: &str, offset: usize) -> Option<Context<'_>> {
    let offset = offset.min(src.len());
    let head = src.get(..offset)?;
    let word_start = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        .last()
        .map_or(offset, |(i, _)| i);
    let (toks, comments) = lex(head);
    // No completion inside comments and strings.
    let in_comment = |c: &mesh_lang::ast::Comment| {
        c.span.start < offset
            && match c.kind {
                // A line comment runs to the end of its line, trailing blanks included.
                CommentKind::Line | CommentKind::Doc => {
                    !head.get(c.span.start..).unwrap_or_default().contains('\n')
                }
                CommentKind::Block => offset < c.span.end,
            }
    };
    if comments.iter().any(in_comment) {
        return None;
    }
    if toks.last().is_some_and(|t| {
        matches!(t.token, Token::Str(_) | Token::RawStr(_) | Token::Error) && t.span.end >= offset
    }) {
        return None;
    }
    let before: Vec<Tok<'_>> = toks
        .into_iter()
        .filter(|t| t.span.end <= word_start)
        .collect();
    let mut blocks = vec![Block::Top];
    let mut pending: Option<Block> = None;
    let mut namespaces: Vec<Option<&str>> = vec![None];
    let mut pending_ns: Option<&str> = None;
    let mut lists: Vec<Option<Token<'_>>> = Vec::new();
    let mut last_kw: Option<Token<'_>> = None;
    for (i, t) in before.iter().enumerate() {
        match &t.token {
            Token::LBrace => {
                blocks.push(pending.take().unwrap_or(Block::Other));
                namespaces.push(pending_ns.take().or(namespaces.last().copied().flatten()));
            }
            Token::RBrace => {
                if blocks.len() > 1 {
                    blocks.pop();
                    namespaces.pop();
                }
                pending = None;
            }
            Token::LBracket => lists.push(last_kw.clone()),
            Token::RBracket => {
                lists.pop();
            }
            token => {
                if let Some(block) = opener(token) {
                    // `retry NAME` inside a route is a reference, not a block; `host` opens
                    // a block only in a gateway (elsewhere it is a request attribute).
                    let in_route = matches!(blocks.last(), Some(Block::Route | Block::Rule));
                    let retry_ref = matches!(token, Token::KwRetry) && in_route;
                    let host_attr =
                        matches!(token, Token::KwHost) && blocks.last() != Some(&Block::Gateway);
                    if !retry_ref && !host_attr {
                        pending = Some(block);
                    }
                    if matches!(token, Token::KwNamespace)
                        && let Some(Tok {
                            token: Token::Ident(name),
                            ..
                        }) = before.get(i + 1)
                    {
                        pending_ns = Some(name);
                    }
                }
                if crate::tokens::is_keyword(token) {
                    last_kw = Some(token.clone());
                }
            }
        }
    }
    Some(Context {
        blocks,
        word: src.get(word_start..offset).unwrap_or_default(),
        list_owner: lists.last().cloned().flatten(),
        namespace: namespaces.last().copied().flatten(),
        before,
    })
}

fn item(label: &str, kind: CompletionItemKind, detail: &str) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: (!detail.is_empty()).then(|| detail.to_string()),
        ..CompletionItem::default()
    }
}

fn words(list: &[&str], kind: CompletionItemKind, detail: &str) -> Vec<CompletionItem> {
    list.iter().map(|w| item(w, kind, detail)).collect()
}

/// Service references as written from namespace `ns`: `name` there, `other/name`
/// elsewhere; with subsets (`name.v1`) when `subsets` is set.
fn service_refs(analysis: &Analysis, ns: &str, subsets: bool) -> Vec<CompletionItem> {
    let mut out = Vec::new();
    for symbol in analysis.index.definitions.keys() {
        match symbol {
            Symbol::Service(sns, name) => {
                let label = if sns == ns {
                    name.clone()
                } else {
                    format!("{sns}/{name}")
                };
                out.push(item(&label, CompletionItemKind::CLASS, "service"));
            }
            Symbol::Subset(sns, service, subset) if subsets => {
                let label = if sns == ns {
                    format!("{service}.{subset}")
                } else {
                    format!("{sns}/{service}.{subset}")
                };
                out.push(item(&label, CompletionItemKind::ENUM_MEMBER, "subset"));
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.label.cmp(&b.label));
    out
}

fn retry_profiles(analysis: &Analysis, ns: &str) -> Vec<CompletionItem> {
    let mut out: Vec<CompletionItem> = analysis
        .index
        .definitions
        .keys()
        .filter_map(|s| match s {
            Symbol::Retry(rns, name) if rns == ns || rns == DEFAULT_NAMESPACE => {
                Some(item(name, CompletionItemKind::FUNCTION, "retry profile"))
            }
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.label.cmp(&b.label));
    if !out.iter().any(|c| c.label == "none") {
        out.push(item("none", CompletionItemKind::KEYWORD, "no retries"));
    }
    out
}

fn attributes() -> Vec<CompletionItem> {
    let mut out = words(
        &["method", "path", "host", "source"],
        CompletionItemKind::PROPERTY,
        "request attribute",
    );
    for (name, detail) in [("header", "request header"), ("query", "query parameter")] {
        out.push(CompletionItem {
            label: format!("{name}(\"…\")"),
            kind: Some(CompletionItemKind::PROPERTY),
            detail: Some(detail.into()),
            insert_text: Some(format!("{name}(\"$1\")")),
            insert_text_format: Some(InsertTextFormat::SNIPPET),
            filter_text: Some(name.into()),
            ..CompletionItem::default()
        });
    }
    out.push(item(
        "exists",
        CompletionItemKind::KEYWORD,
        "exists header(\"…\")",
    ));
    out
}

/// Completion items at byte `offset` of `file`.
pub fn complete(analysis: &Analysis, file: FileId, offset: usize) -> Vec<CompletionItem> {
    let Some(info) = analysis.file(file) else {
        return Vec::new();
    };
    let Some(cx) = context(info.lines.text(), offset) else {
        return Vec::new();
    };
    let ns = cx.namespace.unwrap_or(DEFAULT_NAMESPACE);
    let block = cx.blocks.last().copied().unwrap_or(Block::Top);
    let prev = cx.before.last().map(|t| &t.token);
    let keyword = |list: &[&str]| words(list, CompletionItemKind::KEYWORD, "keyword");
    // `svc.` : the subsets of that service.
    if let Some((service, _)) = cx.word.rsplit_once('.') {
        let (sns, sname) = service.split_once('/').unwrap_or((ns, service));
        let mut out: Vec<CompletionItem> = analysis
            .index
            .definitions
            .keys()
            .filter_map(|s| match s {
                Symbol::Subset(a, b, subset) if a == sns && b == sname => Some(CompletionItem {
                    filter_text: Some(format!("{service}.{subset}")),
                    ..item(subset, CompletionItemKind::ENUM_MEMBER, "subset")
                }),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.label.cmp(&b.label));
        return out;
    }
    if let Some(owner) = &cx.list_owner {
        return match owner {
            Token::KwOn => {
                let mut out = words(STATUS_CLASSES, CompletionItemKind::CONSTANT, "status class");
                out.extend(words(
                    RETRY_CONDITIONS,
                    CompletionItemKind::CONSTANT,
                    "retry condition",
                ));
                out
            }
            Token::KwMethods | Token::KwIn | Token::KwMethod => {
                let mut out = words(METHODS, CompletionItemKind::CONSTANT, "method");
                if matches!(owner, Token::KwIn) {
                    out.extend(service_refs(analysis, ns, false));
                }
                out
            }
            _ => Vec::new(),
        };
    }
    match prev {
        Some(Token::KwTo | Token::KwMirror | Token::KwBackend) => service_refs(analysis, ns, true),
        Some(Token::KwFrom) => {
            let mut out = service_refs(analysis, ns, false);
            if block == Block::Policy {
                out.extend(keyword(&["any", "authenticated", "namespace"]));
            }
            out
        }
        Some(Token::Comma) if block == Block::Policy => service_refs(analysis, ns, false),
        Some(Token::KwRoute | Token::KwPolicy) => service_refs(analysis, ns, false),
        Some(Token::KwRetry) if matches!(block, Block::Route | Block::Rule) => {
            retry_profiles(analysis, ns)
        }
        Some(Token::KwWhen | Token::AndAnd | Token::OrOr | Token::Bang | Token::LParen) => {
            attributes()
        }
        Some(Token::EqEq | Token::NotEq) => {
            let method = cx
                .before
                .iter()
                .rev()
                .nth(1)
                .is_some_and(|t| matches!(t.token, Token::KwMethod));
            let source = cx
                .before
                .iter()
                .rev()
                .nth(1)
                .is_some_and(|t| matches!(t.token, Token::KwSource));
            if method {
                words(METHODS, CompletionItemKind::CONSTANT, "method")
            } else if source {
                service_refs(analysis, ns, false)
            } else {
                Vec::new()
            }
        }
        Some(Token::KwRequest) => words(METHODS, CompletionItemKind::CONSTANT, "method"),
        Some(Token::KwBalance) => words(
            &["round_robin", "least_request", "ewma", "random"],
            CompletionItemKind::ENUM_MEMBER,
            "balancer",
        ),
        Some(Token::KwMtls) => words(
            &["strict", "permissive"],
            CompletionItemKind::ENUM_MEMBER,
            "mTLS mode",
        ),
        Some(Token::KwDefaultPolicy) => words(
            &["allow", "deny"],
            CompletionItemKind::ENUM_MEMBER,
            "effect",
        ),
        Some(Token::KwAccessLog) => words(
            &["off", "json"],
            CompletionItemKind::ENUM_MEMBER,
            "access log format",
        ),
        Some(Token::KwMode) => words(
            &["enforce", "audit"],
            CompletionItemKind::ENUM_MEMBER,
            "policy mode",
        ),
        Some(Token::KwPort) => words(
            &["http", "http2", "grpc", "tcp"],
            CompletionItemKind::ENUM_MEMBER,
            "protocol",
        ),
        Some(Token::KwPer) if block == Block::Policy => keyword(&["caller"]),
        // After a rate limit's rate or burst: its optional parts, or the next member.
        Some(Token::Rate(_) | Token::Int(_)) if block == Block::Policy && in_rate_limit(&cx) => {
            let mut out = keyword(&["burst", "per", "when"]);
            out.extend(keyword(block_keywords(block)));
            out
        }
        Some(Token::KwAbort) => words(STATUS_CLASSES, CompletionItemKind::CONSTANT, "status class"),
        Some(Token::KwExpect) => keyword(expectations(&cx.before)),
        Some(Token::Comma)
            if cx
                .before
                .iter()
                .rev()
                .any(|t| matches!(t.token, Token::KwExpect))
                && block == Block::Test =>
        {
            keyword(expectations(&cx.before))
        }
        Some(Token::KwImport) => STD_IMPORTS
            .iter()
            .map(|name| CompletionItem {
                insert_text: Some(format!("\"{name}\"")),
                ..item(&format!("\"{name}\""), CompletionItemKind::FILE, "bundled")
            })
            .collect(),
        _ if block == Block::Split => service_refs(analysis, ns, true),
        _ => keyword(block_keywords(block)),
    }
}

/// What the case being written may expect: a `connect` case only `allow`, `deny` and
/// `backend`.
fn expectations(before: &[Tok<'_>]) -> &'static [&'static str] {
    let connect = before
        .iter()
        .rev()
        .find(|t| matches!(t.token, Token::KwRequest | Token::KwConnect))
        .is_some_and(|t| matches!(t.token, Token::KwConnect));
    if connect {
        &["allow", "deny", "backend"]
    } else {
        &[
            "allow",
            "deny",
            "rule",
            "backend",
            "timeout",
            "retries",
            "rate_limit",
        ]
    }
}

/// Whether the cursor is in a `rate_limit` member: no other member keyword of the policy
/// since the last `rate_limit`.
fn in_rate_limit(cx: &Context<'_>) -> bool {
    cx.before
        .iter()
        .rev()
        .find(|t| {
            matches!(
                t.token,
                Token::KwRateLimit
                    | Token::KwAllow
                    | Token::KwDeny
                    | Token::KwMode
                    | Token::KwCedar
                    | Token::LBrace
                    | Token::RBrace
            )
        })
        .is_some_and(|t| matches!(t.token, Token::KwRateLimit))
}

/// The bundled files an import may name.
const STD_IMPORTS: &[&str] = &["std/retry", "std/zero-trust"];

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(src: &str) -> Vec<String> {
        let cursor = src.find('|').unwrap();
        let text = src.replacen('|', "", 1);
        let analysis = Analysis::new(vec![("/x/a.mesh".into(), text)], "");
        complete(&analysis, FileId(0), cursor)
            .into_iter()
            .map(|c| c.label)
            .collect()
    }

    const MESH: &str = "namespace shop {\n  service cart { port http 80 subset v1 { v = \"1\" } }\n  service web { port http 80 }\n  retry careful { attempts 2 }\n";

    #[test]
    fn keywords_depend_on_the_enclosing_block() {
        let got = labels(&format!("{MESH}  service x {{ | }}\n}}"));
        assert!(got.contains(&"port".to_string()) && got.contains(&"subset".to_string()));
        assert!(!got.contains(&"rule".to_string()));
        let got = labels(&format!("{MESH}  route cart {{ rule r {{ | }} }}\n}}"));
        assert!(got.contains(&"split".to_string()) && !got.contains(&"port".to_string()));
    }

    #[test]
    fn references_complete_where_they_are_expected() {
        let got = labels(&format!("{MESH}  route cart {{ rule r {{ to | }} }}\n}}"));
        assert!(got.contains(&"cart".to_string()) && got.contains(&"cart.v1".to_string()));
        let got = labels(&format!("{MESH}  route cart {{ retry | }}\n}}"));
        assert!(got.contains(&"careful".to_string()) && got.contains(&"none".to_string()));
        let got = labels(&format!(
            "{MESH}  route cart {{ rule r {{ to cart.| }} }}\n}}"
        ));
        assert_eq!(got, vec!["v1".to_string()]);
        let got = labels(&format!("{MESH}  retry r2 {{ on [| }}\n}}"));
        assert!(got.contains(&"5xx".to_string()) && got.contains(&"reset".to_string()));
        let got = labels(&format!(
            "{MESH}  policy cart {{ allow from web {{ methods [| }} }}\n}}"
        ));
        assert!(got.contains(&"GET".to_string()));
        let got = labels(&format!("{MESH}  route cart {{ rule r when | }}\n}}"));
        assert!(got.contains(&"path".to_string()) && got.contains(&"header(\"…\")".to_string()));
    }

    #[test]
    fn opaque_tcp_keywords_complete_in_their_blocks() {
        let got = labels(&format!("{MESH}  route cart {{ | }}\n}}"));
        for word in ["connect_timeout", "idle_timeout", "to", "split", "rule"] {
            assert!(got.contains(&word.to_string()), "{word} missing: {got:?}");
        }
        let got = labels(&format!(
            "{MESH}  policy cart {{ allow from web {{ | }} }}\n}}"
        ));
        assert!(got.contains(&"ports".to_string()) && got.contains(&"paths".to_string()));
        let got = labels(&format!("{MESH}  test \"t\" {{ | }}\n}}"));
        assert!(got.contains(&"connect".to_string()) && got.contains(&"request".to_string()));
        let got = labels(&format!(
            "{MESH}  test \"t\" {{ connect \"80\" from web to cart expect allow, | }}\n}}"
        ));
        assert!(got.contains(&"backend".to_string()) && !got.contains(&"rule".to_string()));
        let got = labels(&format!(
            "{MESH}  test \"t\" {{ request GET \"/\" from web to cart expect | }}\n}}"
        ));
        assert!(got.contains(&"rule".to_string()));
        let got = labels(&format!("{MESH}  route cart {{ to | }}\n}}"));
        assert!(got.contains(&"cart.v1".to_string()));
    }

    #[test]
    fn rate_limit_and_circuit_breaker_keywords_complete_in_their_blocks() {
        let got = labels(&format!("{MESH}  service x {{ | }}\n}}"));
        assert!(got.contains(&"limits".to_string()) && got.contains(&"outlier".to_string()));
        let got = labels(&format!("{MESH}  service x {{ limits {{ | }} }}\n}}"));
        assert_eq!(got, ["max_connections", "max_pending", "max_requests"]);
        let got = labels(&format!("{MESH}  service x {{ outlier {{ | }} }}\n}}"));
        assert_eq!(
            got,
            [
                "consecutive_5xx",
                "interval",
                "base_ejection",
                "max_ejected"
            ]
        );
        let got = labels(&format!("{MESH}  policy cart {{ | }}\n}}"));
        assert!(got.contains(&"rate_limit".to_string()), "{got:?}");
        let got = labels(&format!("{MESH}  policy cart {{ rate_limit 10/s | }}\n}}"));
        for word in ["burst", "per", "when", "allow"] {
            assert!(got.contains(&word.to_string()), "{word} missing: {got:?}");
        }
        let got = labels(&format!(
            "{MESH}  policy cart {{ rate_limit 10/s burst 5 per | }}\n}}"
        ));
        assert_eq!(got, ["caller"]);
        let got = labels(&format!(
            "{MESH}  test \"t\" {{ request GET \"/\" from web to cart expect allow, | }}\n}}"
        ));
        assert!(got.contains(&"rate_limit".to_string()));
        let got = labels(&format!(
            "{MESH}  test \"t\" {{ connect \"80\" from web to cart expect | }}\n}}"
        ));
        assert!(!got.contains(&"rate_limit".to_string()));
    }

    #[test]
    fn gateway_and_telemetry_keywords_complete_in_their_blocks() {
        let got = labels(&format!("{MESH}  | \n}}"));
        assert!(got.contains(&"gateway".to_string()), "{got:?}");
        let got = labels(&format!("{MESH}  gateway g {{ | }}\n}}"));
        assert_eq!(got, ["listen", "host", "identity"]);
        let got = labels(&format!(
            "{MESH}  gateway g {{ listen 80 tls {{ | }} }}\n}}"
        ));
        assert_eq!(got, ["cert", "key"]);
        let got = labels(&format!("{MESH}  gateway g {{ host \"*\" {{ | }} }}\n}}"));
        assert_eq!(got, ["rule"]);
        let got = labels(&format!(
            "{MESH}  gateway g {{ host \"*\" {{ rule r {{ to | }} }} }}\n}}"
        ));
        assert!(got.contains(&"cart.v1".to_string()), "{got:?}");
        // `host` in a condition is an attribute, not a gateway host block.
        let got = labels(&format!(
            "{MESH}  route cart {{ rule r when host == \"a\" {{ | }} }}\n}}"
        ));
        assert!(got.contains(&"mirror".to_string()), "{got:?}");
        let got = labels("mesh m { telemetry { | } }");
        assert_eq!(got, ["tracing", "access_log"]);
        let got = labels("mesh m { telemetry { access_log | } }");
        assert_eq!(got, ["off", "json"]);
        let got = labels("mesh m { | }");
        assert!(got.contains(&"telemetry".to_string()), "{got:?}");
    }

    #[test]
    fn nothing_inside_comments_or_strings() {
        assert!(labels(&format!("{MESH}  // to |\n}}")).is_empty());
        assert!(labels(&format!("{MESH}  service x {{ identity \"ab| }}\n}}")).is_empty());
    }
}
