//! Implication between conditions, as far as it can be decided cheaply and soundly: when
//! `cond_implies(a, b)` is true, every request matching `a` matches `b`. (False answers
//! mean "not known", never "does not imply".)

use crate::ir::{Cond, CondKind, TextAttr, TextOp};
use mesh_config::glob::{Glob, glob_matches};

/// Whether two conditions are written the same way (positions aside).
pub fn same_cond(a: &Cond, b: &Cond) -> bool {
    same_kind(&a.kind, &b.kind)
}

fn same_kind(a: &CondKind, b: &CondKind) -> bool {
    match (a, b) {
        (CondKind::All(x), CondKind::All(y)) | (CondKind::Any(x), CondKind::Any(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_cond(p, q))
        }
        (CondKind::Not(x), CondKind::Not(y)) => same_cond(x, y),
        _ => match (a, b) {
            (CondKind::All(_) | CondKind::Any(_) | CondKind::Not(_), _)
            | (_, CondKind::All(_) | CondKind::Any(_) | CondKind::Not(_)) => false,
            _ => a == b,
        },
    }
}

/// The conjuncts of a condition: `a && b && c` → `[a, b, c]`.
pub fn conjuncts(cond: &Cond) -> Vec<&Cond> {
    match &cond.kind {
        CondKind::All(items) => items.iter().flat_map(conjuncts).collect(),
        _ => vec![cond],
    }
}

/// Whether every request matching `a` matches `b`.
pub fn cond_implies(a: &Cond, b: &Cond) -> bool {
    let (a_parts, b_parts) = (conjuncts(a), conjuncts(b));
    // `a` implies `b` when each conjunct of `b` is implied by some conjunct of `a`.
    b_parts
        .iter()
        .all(|bp| a_parts.iter().any(|ap| atom_implies(ap, bp)))
        || match &b.kind {
            CondKind::Any(options) => options.iter().any(|option| cond_implies(a, option)),
            _ => false,
        }
}

fn atom_implies(a: &Cond, b: &Cond) -> bool {
    if same_cond(a, b) {
        return true;
    }
    match (&a.kind, &b.kind) {
        (
            CondKind::Text {
                attr: aa,
                op: ao,
                value: av,
            },
            CondKind::Text {
                attr: ba,
                op: bo,
                value: bv,
            },
        ) if aa == ba => text_implies(*ao, av, *bo, bv),
        (
            CondKind::Text {
                attr: aa,
                op: TextOp::Eq,
                value,
            },
            CondKind::TextIn { attr: ba, values },
        ) if aa == ba => values.contains(value),
        (
            CondKind::TextIn { attr: aa, values },
            CondKind::Text {
                attr: ba,
                op,
                value,
            },
        ) if aa == ba => {
            !values.is_empty()
                && values
                    .iter()
                    .all(|v| text_implies(TextOp::Eq, v, *op, value))
        }
        (
            CondKind::Text {
                attr,
                op: TextOp::Eq,
                value,
            },
            CondKind::Exists(b_attr),
        ) => {
            attr == b_attr
                && !value.is_empty()
                && matches!(attr, TextAttr::Header(_) | TextAttr::Query(_))
        }
        (
            CondKind::Method {
                negated: false,
                methods: am,
            },
            CondKind::Method {
                negated: false,
                methods: bm,
            },
        ) => am.iter().all(|m| bm.contains(m)),
        (
            CondKind::Source {
                negated: false,
                services: a_s,
                gateways: a_g,
            },
            CondKind::Source {
                negated: false,
                services: b_s,
                gateways: b_g,
            },
        ) => a_s.iter().all(|s| b_s.contains(s)) && a_g.iter().all(|g| b_g.contains(g)),
        (_, CondKind::Any(options)) => options.iter().any(|o| atom_implies(a, o)),
        _ => false,
    }
}

/// `attr ao av` implies `attr bo bv`.
fn text_implies(ao: TextOp, av: &str, bo: TextOp, bv: &str) -> bool {
    match (ao, bo) {
        (TextOp::Eq, TextOp::Eq) | (TextOp::Ne, TextOp::Ne) => av == bv,
        (TextOp::Eq, TextOp::StartsWith) => av.starts_with(bv),
        (TextOp::Eq, TextOp::Like) => glob_matches(bv, &escape_glob(av)),
        (TextOp::Eq, TextOp::Ne) => av != bv,
        (TextOp::StartsWith, TextOp::StartsWith) => av.starts_with(bv),
        (TextOp::StartsWith, TextOp::Like) => glob_matches(bv, &format!("{}*", escape_glob(av))),
        (TextOp::Like, TextOp::Like) => glob_matches(bv, av),
        (TextOp::Like, TextOp::StartsWith) => {
            Glob::new(av).is_ok_and(|glob| glob.literal_prefix().starts_with(bv))
        }
        _ => false,
    }
}

/// `text` as a glob matching exactly itself.
fn escape_glob(text: &str) -> String {
    text.replace('\\', "\\\\").replace('*', "\\*")
}
