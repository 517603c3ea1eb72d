//! `TraceContext`: the W3C trace context a run was started in, recorded in its first event so
//! that every step, activity attempt and child of the run joins the caller's trace, in
//! whichever process and however much later it runs.
//!
//! Only the two W3C header values are kept (`traceparent`, `tracestate`), validated: a
//! history never holds a context a tracer would refuse. Reading and writing them from spans is
//! the engine's business; this crate has no tracing dependency.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest `tracestate` kept (the W3C recommendation is to propagate at least 512 bytes).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// The length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;

/// A W3C trace context: the `traceparent` and `tracestate` header values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawTraceContext")]
pub struct TraceContext {
    /// `traceparent` (always [`TRACEPARENT_LEN`] bytes) then `tracestate`, in one allocation:
    /// every event carries room for a start's context, so it is kept to one pointer.
    headers: Box<str>,
}

/// The stored shape: the two header values, validated into a [`TraceContext`] as it is read.
#[derive(Deserialize)]
struct RawTraceContext {
    traceparent: String,
    tracestate: String,
}

/// The stored shape, written.
#[derive(Serialize)]
#[serde(rename = "TraceContext")]
struct RawTraceContextRef<'a> {
    traceparent: &'a str,
    tracestate: &'a str,
}

impl Serialize for TraceContext {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        RawTraceContextRef {
            traceparent: self.traceparent(),
            tracestate: self.tracestate(),
        }
        .serialize(serializer)
    }
}

impl TryFrom<RawTraceContext> for TraceContext {
    type Error = Error;

    fn try_from(raw: RawTraceContext) -> Result<TraceContext> {
        TraceContext::new(raw.traceparent, raw.tracestate)
    }
}

fn invalid(kind: &'static str, value: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        kind,
        value: value.chars().take(80).collect(),
        reason,
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TraceContext {
    /// A context from its header values. `traceparent` must be version `00`
    /// (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, lowercase, ids not all zero);
    /// `tracestate` may be empty, and is at most [`MAX_TRACESTATE_LEN`] printable ASCII bytes.
    pub fn new(traceparent: impl Into<String>, tracestate: impl Into<String>) -> Result<Self> {
        let traceparent = traceparent.into();
        let tracestate = tracestate.into();
        let parts: Vec<&str> = traceparent.split('-').collect();
        let [version, trace_id, span_id, flags] = parts.as_slice() else {
            return Err(invalid(
                "traceparent",
                &traceparent,
                "expected four fields separated by '-'",
            ));
        };
        let shaped = *version == "00"
            && trace_id.len() == 32
            && span_id.len() == 16
            && flags.len() == 2
            && [trace_id, span_id, flags].iter().all(|s| is_lower_hex(s));
        if !shaped {
            return Err(invalid(
                "traceparent",
                &traceparent,
                "expected 00-<32 hex>-<16 hex>-<2 hex>, lowercase",
            ));
        }
        if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
            return Err(invalid(
                "traceparent",
                &traceparent,
                "trace and span ids must not be all zeros",
            ));
        }
        if tracestate.len() > MAX_TRACESTATE_LEN {
            return Err(invalid("tracestate", &tracestate, "longer than 512 bytes"));
        }
        if !tracestate.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(invalid(
                "tracestate",
                &tracestate,
                "only printable ASCII is allowed",
            ));
        }
        Ok(TraceContext {
            headers: (traceparent + &tracestate).into_boxed_str(),
        })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> &str {
        &self.headers[..TRACEPARENT_LEN]
    }

    /// The `tracestate` header value (often empty).
    pub fn tracestate(&self) -> &str {
        &self.headers[TRACEPARENT_LEN..]
    }

    /// The trace id, as 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.headers[3..35]
    }

    /// The id of the span the context names (the parent of what joins it), as 16 hex digits.
    pub fn span_id(&self) -> &str {
        &self.headers[36..52]
    }

    /// Whether the caller sampled the trace (the flags' lowest bit).
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.headers[53..TRACEPARENT_LEN], 16).is_ok_and(|f| f & 1 == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_its_parts() {
        let c = TraceContext::new(PARENT, "congo=t61rcWkgMzE").unwrap();
        assert_eq!(c.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id(), "00f067aa0ba902b7");
        assert!(c.sampled());
        assert_eq!(c.tracestate(), "congo=t61rcWkgMzE");
        let unsampled = PARENT.replace("-01", "-00");
        assert!(!TraceContext::new(unsampled, "").unwrap().sampled());
    }

    #[test]
    fn refuses_what_a_tracer_would() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ] {
            assert!(TraceContext::new(bad, "").is_err(), "{bad:?}");
        }
        assert!(TraceContext::new(PARENT, "a".repeat(513)).is_err());
        assert!(TraceContext::new(PARENT, "a=\n").is_err());
    }

    #[test]
    fn decoding_validates() {
        let good = format!(r#"{{"traceparent":"{PARENT}","tracestate":""}}"#);
        assert!(serde_json::from_str::<TraceContext>(&good).is_ok());
        let bad = r#"{"traceparent":"00-zz","tracestate":""}"#;
        assert!(serde_json::from_str::<TraceContext>(bad).is_err());
    }
}
