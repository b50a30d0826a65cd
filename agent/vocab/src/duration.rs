//! Durations as `.mesh` files write them (LANGUAGE.md §2): a whole number and one unit,
//! `us`, `ms`, `s`, `m` or `h` — `500us`, `250ms`, `2s`, `1m`, `1h`. Nothing else: no
//! fractions, no sign, no spaces, no compound `1m30s`.
//!
//! The lexer reads duration literals with [`parse`] and the agent reads its duration flags
//! (`--drain-timeout 10s`) with it too, so a duration that works in a `.mesh` file works on
//! the agent's command line and the other way round. Values convert to microseconds, the
//! unit of every `_us` field of a workload config, saturating at `u64::MAX`.

/// The units a duration (or a rate) may be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum TimeUnit {
    /// `us`
    Micros,
    /// `ms`
    Millis,
    /// `s`
    Seconds,
    /// `m`
    Minutes,
    /// `h`
    Hours,
}

/// How error messages list the units.
const UNITS: &str = "us, ms, s, m, h";

impl TimeUnit {
    /// The unit as written after a number.
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Micros => "us",
            TimeUnit::Millis => "ms",
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "m",
            TimeUnit::Hours => "h",
        }
    }

    /// Parses a unit suffix (case-sensitive: `MS` is not a unit).
    pub fn from_suffix(suffix: &str) -> Option<TimeUnit> {
        Some(match suffix {
            "us" => TimeUnit::Micros,
            "ms" => TimeUnit::Millis,
            "s" => TimeUnit::Seconds,
            "m" => TimeUnit::Minutes,
            "h" => TimeUnit::Hours,
            _ => return None,
        })
    }

    /// How many microseconds one unit is.
    pub fn micros(self) -> u64 {
        match self {
            TimeUnit::Micros => 1,
            TimeUnit::Millis => 1_000,
            TimeUnit::Seconds => 1_000_000,
            TimeUnit::Minutes => 60_000_000,
            TimeUnit::Hours => 3_600_000_000,
        }
    }
}

/// A duration as written: a whole number of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Duration {
    /// The number before the unit.
    pub value: u64,
    /// The unit.
    pub unit: TimeUnit,
}

impl Duration {
    /// The duration in microseconds (saturating).
    pub fn as_micros(self) -> u64 {
        self.value.saturating_mul(self.unit.micros())
    }

    /// As a [`std::time::Duration`] (saturating, like [`Duration::as_micros`]).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_micros(self.as_micros())
    }
}

/// Why a text is not a duration; the message quotes the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", message(.input, .kind))]
pub struct DurationError {
    input: String,
    kind: DurationErrorKind,
}

impl DurationError {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn kind(&self) -> &DurationErrorKind {
        &self.kind
    }
}

/// The ways a text can fail to be a duration, in the order they are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationErrorKind {
    /// Only digits (or nothing): `250`.
    NoUnit,
    /// The text does not start with a digit: `ms`, `-1s`, `.5s`.
    NoNumber,
    /// Digits, then something that is not a unit: `5sec`, `1m30s`, `5xx`.
    UnknownUnit {
        /// Byte offset of the unit in the text (the number of digits before it).
        at: usize,
        /// The unit as written.
        unit: String,
    },
    /// The number does not fit in 64 bits.
    TooLarge,
}

fn message(input: &str, kind: &DurationErrorKind) -> String {
    match kind {
        DurationErrorKind::NoUnit => format!("`{input}` has no unit ({UNITS})"),
        DurationErrorKind::NoNumber => format!("`{input}` does not start with a number"),
        DurationErrorKind::UnknownUnit { unit, .. } => {
            format!("unknown unit `{unit}` in `{input}` ({UNITS})")
        }
        DurationErrorKind::TooLarge => format!("the number in `{input}` is too large"),
    }
}

/// Parses `250ms`: digits, then a unit.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    parse_kind(text).map_err(|kind| DurationError {
        input: text.to_owned(),
        kind,
    })
}

fn parse_kind(text: &str) -> Result<Duration, DurationErrorKind> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if unit.is_empty() {
        return Err(DurationErrorKind::NoUnit);
    }
    if number.is_empty() {
        return Err(DurationErrorKind::NoNumber);
    }
    let unit = TimeUnit::from_suffix(unit).ok_or_else(|| DurationErrorKind::UnknownUnit {
        at: digits,
        unit: unit.to_owned(),
    })?;
    let value = number.parse().map_err(|_| DurationErrorKind::TooLarge)?;
    Ok(Duration { value, unit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> Option<u64> {
        parse(text).ok().map(Duration::as_micros)
    }

    fn kind(text: &str) -> Option<DurationErrorKind> {
        parse(text).err().map(|e| e.kind().clone())
    }

    #[test]
    fn every_unit_of_the_language() {
        assert_eq!(micros("500us"), Some(500));
        assert_eq!(micros("250ms"), Some(250_000));
        assert_eq!(micros("2s"), Some(2_000_000));
        assert_eq!(micros("1m"), Some(60_000_000));
        assert_eq!(micros("1h"), Some(3_600_000_000));
        assert_eq!(micros("0s"), Some(0));
        assert_eq!(micros("007ms"), Some(7_000));
        let d = parse("30m").ok();
        assert_eq!(
            d,
            Some(Duration {
                value: 30,
                unit: TimeUnit::Minutes
            })
        );
        assert_eq!(
            d.map(Duration::to_std),
            Some(std::time::Duration::from_secs(1800))
        );
        for unit in [
            TimeUnit::Micros,
            TimeUnit::Millis,
            TimeUnit::Seconds,
            TimeUnit::Minutes,
            TimeUnit::Hours,
        ] {
            assert_eq!(TimeUnit::from_suffix(unit.suffix()), Some(unit));
        }
    }

    #[test]
    fn large_values_saturate_and_too_large_numbers_are_refused() {
        assert_eq!(micros("18446744073709551615h"), Some(u64::MAX));
        assert_eq!(
            kind("18446744073709551616s"),
            Some(DurationErrorKind::TooLarge)
        );
    }

    #[test]
    fn nothing_but_number_and_unit() {
        use DurationErrorKind as K;
        let unknown = |at, unit: &str| {
            Some(K::UnknownUnit {
                at,
                unit: unit.into(),
            })
        };
        assert_eq!(kind(""), Some(K::NoUnit));
        assert_eq!(kind("250"), Some(K::NoUnit));
        assert_eq!(kind("ms"), Some(K::NoNumber));
        assert_eq!(kind("-1s"), Some(K::NoNumber));
        assert_eq!(kind(".5s"), Some(K::NoNumber));
        assert_eq!(kind(" 1s"), Some(K::NoNumber));
        assert_eq!(kind("1.5s"), unknown(1, ".5s"));
        assert_eq!(kind("1m30s"), unknown(1, "m30s"));
        assert_eq!(kind("10 s"), unknown(2, " s"));
        assert_eq!(kind("5sec"), unknown(1, "sec"));
        assert_eq!(kind("5MS"), unknown(1, "MS"));
        assert_eq!(kind("5ns"), unknown(1, "ns"));
        assert_eq!(kind("1d"), unknown(1, "d"));
        assert_eq!(kind("5xx"), unknown(1, "xx"));
        // The unit is checked before the size of the number, as the lexer reports it.
        assert_eq!(kind("99999999999999999999zz"), unknown(20, "zz"));
    }

    #[test]
    fn messages_quote_the_text_as_the_agent_flags_did() {
        let message = |t: &str| parse(t).err().map(|e| e.to_string());
        assert_eq!(
            message("250").as_deref(),
            Some("`250` has no unit (us, ms, s, m, h)")
        );
        assert_eq!(
            message("ms").as_deref(),
            Some("`ms` does not start with a number")
        );
        assert_eq!(
            message("5sec").as_deref(),
            Some("unknown unit `sec` in `5sec` (us, ms, s, m, h)")
        );
        assert_eq!(
            message("99999999999999999999s").as_deref(),
            Some("the number in `99999999999999999999s` is too large")
        );
    }
}
