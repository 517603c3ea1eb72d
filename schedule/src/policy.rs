//! What a schedule does when a firing finds its last workflow still open, and how far back
//! it catches up after downtime.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::millis;

/// What a firing does while the workflow the schedule last started is still open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Do not start it (counted as skipped).
    #[default]
    Skip,
    /// Keep it, and start it when the open one closes; keep at most one such firing (later
    /// ones are skipped).
    BufferOne,
    /// Keep every such firing (up to [`MAX_BUFFERED`]) and start them one after another,
    /// each when the one before closes.
    BufferAll,
    /// Ask the open one to cancel, and start this firing when it has closed (a later firing
    /// meanwhile takes its place).
    CancelOther,
    /// Terminate the open one and start this firing at once.
    TerminateOther,
    /// Start it anyway: runs of the schedule may overlap.
    AllowAll,
}

/// The most firings a schedule keeps waiting under [`OverlapPolicy::BufferAll`].
pub const MAX_BUFFERED: usize = 1_000;

impl OverlapPolicy {
    /// Every policy.
    pub const ALL: [OverlapPolicy; 6] = [
        OverlapPolicy::Skip,
        OverlapPolicy::BufferOne,
        OverlapPolicy::BufferAll,
        OverlapPolicy::CancelOther,
        OverlapPolicy::TerminateOther,
        OverlapPolicy::AllowAll,
    ];

    /// Its name (`skip`, `buffer_one`, ...), as stored and as the CLI takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::BufferOne => "buffer_one",
            OverlapPolicy::BufferAll => "buffer_all",
            OverlapPolicy::CancelOther => "cancel_other",
            OverlapPolicy::TerminateOther => "terminate_other",
            OverlapPolicy::AllowAll => "allow_all",
        }
    }
}

impl fmt::Display for OverlapPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OverlapPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().replace('-', "_").to_ascii_lowercase();
        OverlapPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = OverlapPolicy::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown overlap policy {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How a schedule behaves beyond its times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulePolicies {
    /// What a firing does while the last workflow is open.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// After downtime (no engine running, or the schedule's engine dead), times at most this
    /// old still fire; older ones are counted as missed. Default: one day.
    #[serde(rename = "catchup_window_ms", with = "millis")]
    pub catchup_window: Duration,
}

/// The catch-up window unless told: a nightly job survives a long outage, and with the
/// default overlap policy (skip) a frequent one starts once, not once per missed time.
pub const DEFAULT_CATCHUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Default for SchedulePolicies {
    fn default() -> Self {
        SchedulePolicies {
            overlap: OverlapPolicy::Skip,
            catchup_window: DEFAULT_CATCHUP_WINDOW,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for policy in OverlapPolicy::ALL {
            assert_eq!(policy.as_str().parse::<OverlapPolicy>(), Ok(policy));
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(json, format!("\"{}\"", policy.as_str()));
        }
        assert_eq!("Buffer-One".parse(), Ok(OverlapPolicy::BufferOne));
        assert!("sometimes".parse::<OverlapPolicy>().is_err());
    }
}
