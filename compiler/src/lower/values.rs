//! Typing literals: each member expects one type (LANGUAGE.md §2); anything else is
//! `E0004` with the expected type's literal forms in the help, and values outside their
//! range are `E0006`.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{Literal, LiteralKind, Percent, Rate, Span};

use crate::diag::{OUT_OF_RANGE, TYPE_MISMATCH};
use crate::ir::Micros;

use super::Cx;

/// The types a literal can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Int,
    Duration,
    Percent,
    Rate,
    String,
    Status,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Int => "Int",
            Type::Duration => "Duration",
            Type::Percent => "Percent",
            Type::Rate => "Rate",
            Type::String => "String",
            Type::Status => "Status",
        }
    }

    fn forms(self) -> &'static str {
        match self {
            Type::Int => "an Int is a whole number, as in `3` or `9080`",
            Type::Duration => "a Duration has a unit: `500us`, `250ms`, `2s`, `1m`, `1h`",
            Type::Percent => "a Percent is written `10%` or `12.5%`",
            Type::Rate => "a Rate is written `10/s`, `600/m` or `1/h`",
            Type::String => "a String is written in double quotes: `\"text\"`",
            Type::Status => "a Status is a code such as `503`",
        }
    }
}

impl Cx<'_> {
    /// `E0004`: expected `expected`, found the literal's type.
    pub fn mismatch(
        &mut self,
        expected: Type,
        found: &str,
        span: Span,
        extra_help: Option<String>,
    ) {
        let help = match extra_help {
            Some(extra) => format!("{extra}; {}", expected.forms()),
            None => expected.forms().to_string(),
        };
        self.push(
            Diagnostic::error(
                TYPE_MISMATCH,
                format!("expected {}, found {found}", expected.name()),
                span,
                format!("expected {}", expected.name()),
            )
            .with_help(help),
        );
    }

    fn literal_mismatch(&mut self, expected: Type, lit: &Literal) {
        let extra = match (&lit.kind, expected) {
            (LiteralKind::Int(n), Type::Duration) => Some(format!("add a unit: `{n}s` or `{n}ms`")),
            (LiteralKind::Int(n), Type::Percent) => Some(format!("write `{n}%`")),
            (LiteralKind::Int(n), Type::Rate) => Some(format!("write `{n}/s`")),
            (LiteralKind::Percent(p), Type::Int) => {
                Some(format!("drop the `%`: `{}`", p.milli / 1000))
            }
            _ => None,
        };
        self.mismatch(expected, lit.kind.type_name(), lit.span, extra);
    }

    /// `E0006` at `span`.
    pub fn out_of_range(&mut self, message: String, span: Span, label: &str, help: &str) {
        self.push(Diagnostic::error(OUT_OF_RANGE, message, span, label).with_help(help));
    }

    /// A Duration, in microseconds.
    pub fn duration(&mut self, lit: &Literal) -> Option<Micros> {
        match &lit.kind {
            LiteralKind::Duration(d) => Some(d.as_micros()),
            _ => {
                self.literal_mismatch(Type::Duration, lit);
                None
            }
        }
    }

    /// A Percent between 0% and 100%.
    pub fn percent(&mut self, lit: &Literal) -> Option<Percent> {
        match &lit.kind {
            LiteralKind::Percent(p) if *p <= Percent::FULL => Some(*p),
            LiteralKind::Percent(p) => {
                self.out_of_range(
                    format!("{p} is more than 100%"),
                    lit.span,
                    "out of range",
                    "percents go from 0% to 100%",
                );
                None
            }
            _ => {
                self.literal_mismatch(Type::Percent, lit);
                None
            }
        }
    }

    /// A Rate.
    pub fn rate(&mut self, lit: &Literal) -> Option<Rate> {
        match &lit.kind {
            LiteralKind::Rate(r) => Some(*r),
            _ => {
                self.literal_mismatch(Type::Rate, lit);
                None
            }
        }
    }

    /// An Int in `min..=max`; `what` names it in the range error.
    pub fn int_in(&mut self, lit: &Literal, min: u64, max: u64, what: &str) -> Option<u64> {
        match &lit.kind {
            LiteralKind::Int(n) if (min..=max).contains(n) => Some(*n),
            LiteralKind::Int(n) => {
                self.out_of_range(
                    format!("{what} {n} is out of range"),
                    lit.span,
                    "out of range",
                    &format!("{what} goes from {min} to {max}"),
                );
                None
            }
            _ => {
                self.literal_mismatch(Type::Int, lit);
                None
            }
        }
    }

    /// An HTTP status code, 100 to 599.
    pub fn status(&mut self, lit: &Literal) -> Option<u16> {
        match &lit.kind {
            LiteralKind::Int(_) => self.int_in(lit, 100, 599, "status code").map(|n| n as u16),
            _ => {
                self.literal_mismatch(Type::Status, lit);
                None
            }
        }
    }

    /// A String.
    pub fn string<'l>(&mut self, lit: &'l Literal) -> Option<&'l str> {
        match &lit.kind {
            LiteralKind::Str(s) => Some(&s.value),
            _ => {
                self.literal_mismatch(Type::String, lit);
                None
            }
        }
    }
}
