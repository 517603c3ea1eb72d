//! Flow control's vocabulary: fairness keys given at a start, and the
//! fleet-wide limits on activity attempts (concurrency and rate) that claims enforce. How
//! claims apply them is `reprise.claim_tasks` (migrations/0006_flow_control.sql).

use std::fmt;

use crate::error::{Error, Result};

/// The longest fairness key, in bytes.
pub const MAX_FAIRNESS_KEY_BYTES: usize = 255;

/// Checks a fairness key: 1 to [`MAX_FAIRNESS_KEY_BYTES`] bytes.
pub(crate) fn check_fairness_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_FAIRNESS_KEY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "a fairness key has 1 to {MAX_FAIRNESS_KEY_BYTES} bytes, not {}",
            key.len()
        )));
    }
    Ok(())
}

/// What a limit applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitScope {
    /// Every activity attempt of a task queue, whatever its type.
    Queue(String),
    /// Every attempt of an activity type, whatever its queue.
    ActivityType(String),
}

impl LimitScope {
    /// The scope's kind as stored (`queue` or `activity_type`).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            LimitScope::Queue(_) => "queue",
            LimitScope::ActivityType(_) => "activity_type",
        }
    }

    /// The queue's or the activity type's name.
    pub fn name(&self) -> &str {
        match self {
            LimitScope::Queue(name) | LimitScope::ActivityType(name) => name,
        }
    }

    /// The scope stored as `kind` and `name`; a typed error for a kind this build does not
    /// know.
    pub(crate) fn from_stored(kind: &str, name: String) -> Result<LimitScope> {
        match kind {
            "queue" => Ok(LimitScope::Queue(name)),
            "activity_type" => Ok(LimitScope::ActivityType(name)),
            other => Err(Error::Corrupt {
                what: "limit scope".into(),
                reason: format!("unknown scope {other:?}"),
            }),
        }
    }
}

impl fmt::Display for LimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitScope::Queue(name) => write!(f, "queue {name}"),
            LimitScope::ActivityType(name) => write!(f, "activity type {name}"),
        }
    }
}

/// A token bucket: `per_second` tokens a second, held up to `burst`. Each attempt takes one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added each second (more than 0).
    pub per_second: f64,
    /// Most tokens held, so most attempts started at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// A limit on activity attempts, held across every worker.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limit {
    /// Most attempts running at once.
    pub max_concurrent: Option<u32>,
    /// Most attempts started per second, as a token bucket.
    pub rate: Option<Rate>,
}

impl Limit {
    /// Checks the limit: something limited, a positive concurrency, a finite positive rate
    /// with a burst of at least 1.
    pub(crate) fn check(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::InvalidArgument(why));
        if self.max_concurrent.is_none() && self.rate.is_none() {
            return invalid("a limit needs a maximum concurrency, a rate, or both".into());
        }
        if self.max_concurrent == Some(0) {
            return invalid("a maximum concurrency is at least 1".into());
        }
        if self
            .max_concurrent
            .is_some_and(|m| i32::try_from(m).is_err())
        {
            return invalid(format!("a maximum concurrency is at most {}", i32::MAX));
        }
        if let Some(rate) = self.rate {
            if !(rate.per_second.is_finite() && rate.per_second > 0.0) {
                return invalid(format!(
                    "a rate is a finite number of attempts per second above 0, not {}",
                    rate.per_second
                ));
            }
            if rate.burst == 0 || i32::try_from(rate.burst).is_err() {
                return invalid(format!(
                    "a rate's burst is from 1 to {}, not {}",
                    i32::MAX,
                    rate.burst
                ));
            }
        }
        Ok(())
    }
}

/// A limit as stored, with what it holds back now.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitUsage {
    /// What it applies to.
    pub scope: LimitScope,
    /// The limit.
    pub limit: Limit,
    /// Attempts of its scope running now (leased, their lease not yet reaped).
    pub running: u64,
    /// Due attempts of its scope waiting to be claimed.
    pub waiting: u64,
    /// Tokens in the bucket now (`None` without a rate).
    pub tokens: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_what_cannot_limit() {
        let rate = |per_second, burst| Limit {
            max_concurrent: None,
            rate: Some(Rate { per_second, burst }),
        };
        let concurrency = |m| Limit {
            max_concurrent: Some(m),
            rate: None,
        };
        assert!(concurrency(3).check().is_ok());
        assert!(rate(50.0, 50).check().is_ok());
        for bad in [
            Limit::default(),
            concurrency(0),
            concurrency(u32::MAX),
            rate(0.0, 1),
            rate(-1.0, 1),
            rate(f64::NAN, 1),
            rate(f64::INFINITY, 1),
            rate(10.0, 0),
        ] {
            assert!(
                matches!(bad.check(), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fairness_keys_are_short_and_not_empty() {
        assert!(check_fairness_key("tenant-1").is_ok());
        assert!(check_fairness_key("").is_err());
        assert!(check_fairness_key(&"k".repeat(MAX_FAIRNESS_KEY_BYTES)).is_ok());
        assert!(check_fairness_key(&"k".repeat(MAX_FAIRNESS_KEY_BYTES + 1)).is_err());
    }
}
