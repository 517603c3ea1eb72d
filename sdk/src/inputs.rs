//! Replay rule `COMPARE_INPUTS`: a replayed decision's input against the recorded one.
//!
//! Decisions are matched by what identifies them (kind, name, duration); an input computed from
//! something replay does not reproduce (`HashMap` order, the clock, a global) can still change
//! without changing the decision. The recorded input is what the activity or child actually
//! ran with, so replay keeps it either way; what this module decides is whether the code now
//! gives another one, and where the two first differ.
//!
//! Equal bytes are the same input (the common case, one `memcmp`). Different bytes may still
//! hold the same value — map keys written in another order (a `HashMap` in the input), or a
//! codec that draws a nonce — so only then are both decoded and compared as JSON values.

use std::fmt::Write;

use reprise_history::{DataConverter, EventKind, Payload};
use serde_json::Value;

/// What replay does when the code gives a recorded decision another input than history holds
/// (replay rule `COMPARE_INPUTS`; runs recorded before the rule are never compared).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputChanges {
    /// Keep the recorded input (it is what ran) and report the change (ND08) through
    /// [`crate::Execution::take_input_changes`]. The default in production: an input may
    /// change between versions on purpose.
    #[default]
    Report,
    /// Fail the replay with ND08, as any other nondeterminism: for tests, the deploy check, and
    /// engines told to park such runs.
    Fail,
}

/// What comparing a replayed decision's input found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InputComparison {
    /// The same input, or one that cannot be compared (a payload in the old bincode format,
    /// which records no field names, or one this build cannot decode).
    Same,
    /// Another input. `path` is where the values first differ (`$.items[2].sku`), left out
    /// when a codec protects the payloads (a path may name a map key, which is data).
    Changed {
        /// Where the values first differ.
        path: Option<String>,
    },
}

/// The input a decision carries, if its kind carries one.
pub(crate) fn decision_input(kind: &EventKind) -> Option<&Payload> {
    match kind {
        EventKind::ActivityScheduled(e) => Some(&e.input),
        EventKind::ChildWorkflowStarted(e) => Some(&e.input),
        EventKind::WorkflowContinuedAsNew(e) => Some(&e.input),
        EventKind::LocalActivityScheduled(e) => Some(&e.input),
        EventKind::LocalActivityBackoff(_)
        | EventKind::UpdateAccepted(_)
        | EventKind::UpdateCompleted(_)
        | EventKind::WorkflowStarted(_)
        | EventKind::ActivityCompleted(_)
        | EventKind::ActivityFailed(_)
        | EventKind::ActivityTimedOut(_)
        | EventKind::ActivityCancelRequested(_)
        | EventKind::ActivityCancelled(_)
        | EventKind::TimerStarted(_)
        | EventKind::TimerFired(_)
        | EventKind::TimerCancelled(_)
        | EventKind::SignalReceived(_)
        | EventKind::ChildWorkflowCompleted(_)
        | EventKind::ChildWorkflowFailed(_)
        | EventKind::ChildWorkflowCancelRequested(_)
        | EventKind::CancelRequested(_)
        | EventKind::MarkerRecorded(_)
        | EventKind::WorkflowCompleted(_)
        | EventKind::WorkflowFailed(_)
        | EventKind::WorkflowCancelled(_)
        | EventKind::WorkflowTerminated(_)
        | EventKind::WorkflowTimedOut(_) => None,
    }
}

/// Compares the input the code gives a decision now with the recorded one.
pub(crate) fn compare_inputs(
    converter: &DataConverter,
    recorded: &Payload,
    made: &Payload,
) -> InputComparison {
    if recorded.as_bytes() == made.as_bytes() {
        return InputComparison::Same;
    }
    let (Ok(Some(recorded)), Ok(Some(made))) =
        (converter.to_json(recorded), converter.to_json(made))
    else {
        return InputComparison::Same;
    };
    let mut path = String::from("$");
    if !first_difference(&recorded, &made, &mut path) {
        return InputComparison::Same;
    }
    let protected = converter.codec_names().next().is_some();
    InputComparison::Changed {
        path: (!protected).then_some(path),
    }
}

/// Longest map key shown in a path, in characters.
const MAX_KEY_CHARS: usize = 40;

/// Whether `a` and `b` differ; if so, `path` is extended to where they first do (object keys
/// in sorted order, so the answer does not depend on either side's key order).
fn first_difference(a: &Value, b: &Value, path: &mut String) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let at = path.len();
                push_key(path, key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) if !first_difference(x, y, path) => path.truncate(at),
                    _ => return true,
                }
            }
            false
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let at = path.len();
                let _ = write!(path, "[{i}]");
                if first_difference(x, y, path) {
                    return true;
                }
                path.truncate(at);
            }
            if a.len() != b.len() {
                let _ = write!(path, "[{}]", a.len().min(b.len()));
                return true;
            }
            false
        }
        _ => a != b,
    }
}

fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key.len() <= MAX_KEY_CHARS
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        let shown: String = key.chars().take(MAX_KEY_CHARS).collect();
        let more = if shown.len() < key.len() { "…" } else { "" };
        let _ = write!(path, "[{shown:?}{more}]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_history::Limits;
    use serde_json::json;

    fn differs(a: Value, b: Value) -> Option<String> {
        let mut path = String::from("$");
        first_difference(&a, &b, &mut path).then_some(path)
    }

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        assert_eq!(differs(json!({"a": 1}), json!({"a": 1})), None);
        assert_eq!(
            differs(
                json!({"items": [{"sku": "x"}, {"sku": "y"}], "n": 2}),
                json!({"n": 2, "items": [{"sku": "x"}, {"sku": "z"}]}),
            ),
            Some("$.items[1].sku".into())
        );
        assert_eq!(
            differs(json!([1, 2]), json!([1, 2, 3])),
            Some("$[2]".into())
        );
        assert_eq!(
            differs(json!({"a": 1}), json!({"a": 1, "b": 2})),
            Some("$.b".into())
        );
        assert_eq!(
            differs(json!({"north-1": 1}), json!({"north-1": 2})),
            Some("$[\"north-1\"]".into())
        );
        assert_eq!(differs(json!("north"), json!(3)), Some("$".into()));
    }

    #[test]
    fn keys_in_another_order_are_the_same_input() {
        // Serialized in field order: the same object, its keys in another order.
        #[derive(serde::Serialize)]
        struct BFirst {
            b: u32,
            a: u32,
        }
        #[derive(serde::Serialize)]
        struct AFirst {
            a: u32,
            b: u32,
        }
        let converter = DataConverter::new(Limits::DEFAULT);
        let recorded = Payload::encode(&BFirst { b: 2, a: 1 }, &Limits::DEFAULT).unwrap();
        let made = Payload::encode(&AFirst { a: 1, b: 2 }, &Limits::DEFAULT).unwrap();
        assert_ne!(recorded.as_bytes(), made.as_bytes());
        assert_eq!(
            compare_inputs(&converter, &recorded, &made),
            InputComparison::Same
        );
        let other = Payload::encode(&AFirst { a: 1, b: 3 }, &Limits::DEFAULT).unwrap();
        assert_eq!(
            compare_inputs(&converter, &recorded, &other),
            InputComparison::Changed {
                path: Some("$.b".into())
            }
        );
    }

    #[test]
    fn old_bincode_inputs_are_not_compared() {
        let converter = DataConverter::new(Limits::DEFAULT);
        let recorded = Payload::encode_bincode_v1(&7u32).unwrap();
        let made = Payload::encode(&8u32, &Limits::DEFAULT).unwrap();
        assert_eq!(
            compare_inputs(&converter, &recorded, &made),
            InputComparison::Same
        );
    }
}
