//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): parsing and formatting
//! `traceparent`, and the decision a hop makes about a request's trace — continue the
//! incoming one (its trace id and sampled flag kept) or start a new one (sampled with the
//! mesh's `tracing` probability). A malformed `traceparent` is never forwarded: it is
//! replaced by a new trace, and its `tracestate` dropped with it.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// 100% in the contract's `tracing_milli` (thousandths of a percent).
pub const ALL_MILLI: u32 = 100_000;

/// The `sampled` trace flag.
const SAMPLED: u8 = 0x01;

/// Why a `traceparent` value is not valid (it is then replaced, never forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTraceParent {
    /// More than one `traceparent` header.
    #[error("more than one traceparent header")]
    Repeated,
    /// Not `version-traceid-parentid-flags` with the lengths the version requires.
    #[error("not VERSION-TRACEID-PARENTID-FLAGS")]
    Shape,
    /// The version is not two lower-case hex digits, or is `ff`.
    #[error("invalid version")]
    Version,
    /// The trace id is not 32 lower-case hex digits, or is all zeros.
    #[error("invalid trace id")]
    TraceId,
    /// The parent id is not 16 lower-case hex digits, or is all zeros.
    #[error("invalid parent id")]
    ParentId,
    /// The flags are not two lower-case hex digits.
    #[error("invalid trace flags")]
    Flags,
}

/// A valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (never all zeros).
    pub trace_id: [u8; 16],
    /// The sender's span id (never all zeros).
    pub parent_id: [u8; 8],
    /// The trace flags.
    pub flags: u8,
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// `N` bytes from `2N` lower-case hex digits.
fn hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let (high, low) = (hex_digit(pair[0])?, hex_digit(pair[1])?);
        out[i] = (high << 4) | low;
    }
    Some(out)
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

impl TraceParent {
    /// Parses a `traceparent` value. Version `00` must be exactly 55 characters; a
    /// higher version may carry more fields after a `-`, which are ignored (the spec's
    /// forward compatibility); `ff` is invalid.
    pub fn parse(value: &[u8]) -> Result<TraceParent, InvalidTraceParent> {
        if value.len() < 55 {
            return Err(InvalidTraceParent::Shape);
        }
        let version = hex::<1>(&value[..2]).ok_or(InvalidTraceParent::Version)?[0];
        if version == 0xff {
            return Err(InvalidTraceParent::Version);
        }
        let exact = value.len() == 55;
        if !exact && (version == 0 || value[55] != b'-') {
            return Err(InvalidTraceParent::Shape);
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return Err(InvalidTraceParent::Shape);
        }
        let trace_id = hex::<16>(&value[3..35])
            .filter(|id| *id != [0; 16])
            .ok_or(InvalidTraceParent::TraceId)?;
        let parent_id = hex::<8>(&value[36..52])
            .filter(|id| *id != [0; 8])
            .ok_or(InvalidTraceParent::ParentId)?;
        let flags = hex::<1>(&value[53..55]).ok_or(InvalidTraceParent::Flags)?[0];
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the sender sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The version-00 value naming `span_id` as the parent: the `sampled` flag is kept,
    /// flags this agent does not know are cleared.
    pub fn format(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> HeaderValue {
        let mut out = Vec::with_capacity(55);
        out.extend_from_slice(b"00-");
        push_hex(&mut out, trace_id);
        out.push(b'-');
        push_hex(&mut out, span_id);
        out.extend_from_slice(if sampled { b"-01" } else { b"-00" });
        HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The incoming `traceparent` of `headers`: `Ok(None)` without one.
pub fn incoming(headers: &HeaderMap) -> Result<Option<TraceParent>, InvalidTraceParent> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidTraceParent::Repeated);
    }
    TraceParent::parse(first.as_bytes()).map(Some)
}

/// A new random span id (never all zeros).
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A new random trace id (never all zeros).
pub fn new_trace_id() -> [u8; 16] {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// This hop's part of a request's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The agent's span for this hop: the parent id of the request it sends on.
    pub span_id: [u8; 8],
    /// The span this hop's span is a child of (`None`: the trace starts here).
    pub parent_id: Option<[u8; 8]>,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

/// Decides `headers`' trace for this hop and rewrites them for the next: the incoming
/// trace is continued (its trace id, sampled flag and `tracestate` kept); without a valid
/// one a new trace starts, sampled with probability `sampling_milli / 100000`, and any
/// `tracestate` is dropped. The `traceparent` sent on names this hop's span as parent.
/// B3 headers are left as they are.
pub fn hop(headers: &mut HeaderMap, sampling_milli: u32) -> Hop {
    let hop = match incoming(headers) {
        Ok(Some(parent)) => Hop {
            trace_id: parent.trace_id,
            span_id: new_span_id(),
            parent_id: Some(parent.parent_id),
            sampled: parent.sampled(),
        },
        Ok(None) | Err(_) => {
            headers.remove(TRACESTATE);
            Hop {
                trace_id: new_trace_id(),
                span_id: new_span_id(),
                parent_id: None,
                sampled: sampling_milli > 0 && fastrand::u32(..ALL_MILLI) < sampling_milli,
            }
        }
    };
    headers.insert(
        TRACEPARENT,
        TraceParent::format(&hop.trace_id, &hop.span_id, hop.sampled),
    );
    hop
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_parses_and_formats_back() {
        let parent = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert!(parent.sampled());
        assert_eq!(to_hex(&parent.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(to_hex(&parent.parent_id), "00f067aa0ba902b7");
        let formatted = TraceParent::format(&parent.trace_id, &parent.parent_id, true);
        assert_eq!(formatted, VALID);
        let unsampled = TraceParent::format(&parent.trace_id, &parent.parent_id, false);
        assert!(unsampled.to_str().unwrap().ends_with("-00"));
    }

    #[test]
    fn malformed_values_are_refused() {
        let cases = [
            ("", InvalidTraceParent::Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                InvalidTraceParent::Shape,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                InvalidTraceParent::Shape,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidTraceParent::Version,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidTraceParent::Version,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                InvalidTraceParent::TraceId,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                InvalidTraceParent::TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                InvalidTraceParent::ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                InvalidTraceParent::Flags,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidTraceParent::Shape,
            ),
        ];
        for (value, error) in cases {
            assert_eq!(TraceParent::parse(value.as_bytes()), Err(error), "{value}");
        }
        // A later version may carry more fields; its first four are read.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(TraceParent::parse(future.as_bytes()).is_ok());
        let glued = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(
            TraceParent::parse(glued.as_bytes()),
            Err(InvalidTraceParent::Shape)
        );
    }

    #[test]
    fn a_hop_continues_a_valid_trace_and_replaces_an_invalid_one() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        let decided = super::hop(&mut headers, 0);
        assert!(decided.sampled, "the incoming sampled flag is kept at 0%");
        assert_eq!(
            to_hex(&decided.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            decided.parent_id.map(|p| to_hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        let sent = TraceParent::parse(headers[TRACEPARENT].as_bytes()).unwrap();
        assert_eq!(
            (sent.trace_id, sent.parent_id),
            (decided.trace_id, decided.span_id)
        );
        assert_eq!(headers[TRACESTATE], "vendor=x");

        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-garbage"));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        let decided = super::hop(&mut headers, ALL_MILLI);
        assert!(decided.sampled && decided.parent_id.is_none());
        assert!(TraceParent::parse(headers[TRACEPARENT].as_bytes()).is_ok());
        assert!(!headers.contains_key(TRACESTATE));

        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        let decided = super::hop(&mut headers, 0);
        assert!(
            !decided.sampled,
            "a repeated header is invalid: a new trace, at 0%"
        );
        assert_eq!(headers.get_all(TRACEPARENT).iter().count(), 1);
    }

    #[test]
    fn sampling_follows_the_probability() {
        let sampled = (0..10_000)
            .filter(|_| hop(&mut HeaderMap::new(), 10_000).sampled)
            .count();
        assert!((700..1300).contains(&sampled), "{sampled} of 10000 at 10%");
        assert!(!(0..1000).any(|_| hop(&mut HeaderMap::new(), 0).sampled));
    }
}
