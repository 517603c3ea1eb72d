//! Newtype identifiers: one type per kind of id, so they cannot be mixed up.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Position of an event in a run's history, counted from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    /// The seq of a run's first event (`WorkflowStarted`).
    pub const FIRST: Seq = Seq(1);

    /// A seq from its number. Seq 0 does not exist; validation rejects it.
    pub const fn new(n: u64) -> Self {
        Seq(n)
    }

    /// The number of this seq.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The seq after this one.
    pub const fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies one run of a workflow. Continue-as-new and reset start new runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(uuid::Uuid);

impl RunId {
    /// A fresh random run id.
    pub fn random() -> Self {
        RunId(uuid::Uuid::new_v4())
    }

    /// Wraps an existing uuid.
    pub const fn from_uuid(id: uuid::Uuid) -> Self {
        RunId(id)
    }

    /// The uuid inside.
    pub const fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Checks the rules every name and id follows: non-empty, bounded, printable.
fn check_name(kind: &'static str, value: &str, max_len: usize) -> Result<()> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > max_len {
        Some("is too long")
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            kind,
            value: value.chars().take(64).collect(),
            reason,
        }),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest allowed value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Checks the value: non-empty, at most `MAX_LEN` bytes, no control characters.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                check_name($kind, &value, Self::MAX_LEN)?;
                Ok($name(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                $name::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// The user-chosen id of a workflow; at most one run per id is open at a time.
    WorkflowId, "workflow id", 512
);
name_type!(
    /// The registered name of a workflow type (which orchestrator code runs it).
    WorkflowType, "workflow type", 255
);
name_type!(
    /// The registered name of an activity type.
    ActivityType, "activity type", 255
);
name_type!(
    /// A named queue that activity workers (or orchestrator hosts) take work from.
    TaskQueue, "task queue", 255
);
name_type!(
    /// The name a signal is sent and received under.
    SignalName, "signal name", 255
);
name_type!(
    /// The id of a code change guarded by `ctx.patched(id)`.
    PatchId, "patch id", 255
);
name_type!(
    /// The name an update is sent and handled under.
    UpdateName, "update name", 255
);
name_type!(
    /// The id of one update of a run, given by its caller or drawn at random: an update sent
    /// twice with one id runs once.
    UpdateId, "update id", 255
);

name_type!(
    /// The id of a schedule: unique among schedules, and the prefix of the workflow ids its
    /// firings start (`<schedule id>-<scheduled time>`).
    ScheduleId, "schedule id", 255
);

impl Default for TaskQueue {
    /// The queue named `default`.
    fn default() -> Self {
        TaskQueue("default".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(WorkflowId::new("order-42").is_ok());
        let err = WorkflowId::new("").unwrap_err().to_string();
        assert_eq!(err, "invalid workflow id \"\": must not be empty");
        let err = ActivityType::new("a\nb").unwrap_err().to_string();
        assert!(err.contains("control characters"), "{err}");
        let err = TaskQueue::new("x".repeat(256)).unwrap_err().to_string();
        assert!(err.contains("too long"), "{err}");
        assert!(TaskQueue::new("x".repeat(255)).is_ok());
    }

    #[test]
    fn names_are_checked_when_deserialized() {
        let err = serde_json::from_str::<SignalName>("\"\"").unwrap_err();
        assert!(err.to_string().contains("must not be empty"), "{err}");
        let ok: SignalName = serde_json::from_str("\"approve\"").unwrap();
        assert_eq!(ok.as_str(), "approve");
    }
}
