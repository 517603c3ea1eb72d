//! Options recorded with decisions: retry policies, timeouts, parent-close policy, run origin.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{RunId, ScheduleId, Seq, WorkflowId};
use crate::time::Timestamp;

/// How an activity is retried. Backoff is `initial * multiplier^(attempt-1)`, capped at
/// `max_backoff`, then spread by ±`jitter` (a fraction in `0.0..=1.0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Most attempts, the first included; `None` retries until a deadline stops it.
    pub max_attempts: Option<u32>,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Growth of the wait from one attempt to the next (at least 1.0).
    #[serde(with = "finite")]
    pub backoff_multiplier: f64,
    /// Random spread applied to each wait, as a fraction of it.
    #[serde(with = "finite")]
    pub jitter: f64,
    /// Error types (`Failure::error_type`) that are never retried.
    pub non_retryable_error_types: Vec<String>,
    /// The only error types an application failure is retried for; empty: any type not in
    /// `non_retryable_error_types`. Timeouts are retried whatever it holds.
    #[serde(default)]
    pub retry_on: Vec<String>,
}

impl Default for RetryPolicy {
    /// Unlimited attempts from 1 s doubling to 100 s, with 20 % jitter: the usual choice.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: None,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(100),
            backoff_multiplier: 2.0,
            jitter: 0.2,
            non_retryable_error_types: Vec::new(),
            retry_on: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// What makes this policy unusable, if anything: no attempt at all, a multiplier below
    /// 1, a jitter outside `0.0..=1.0`, or a number that is not finite. Starters refuse such a
    /// policy; `backoff` would clamp it instead.
    pub fn problem(&self) -> Option<String> {
        if self.max_attempts == Some(0) {
            return Some("a retry policy needs at least one attempt".to_string());
        }
        if !self.backoff_multiplier.is_finite() || self.backoff_multiplier < 1.0 {
            return Some(format!(
                "a retry policy's backoff multiplier must be at least 1, not {}",
                self.backoff_multiplier
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Some(format!(
                "a retry policy's jitter must be between 0 and 1, not {}",
                self.jitter
            ));
        }
        None
    }

    /// Whether a failed attempt number `attempt` (from 1) with this failure gets another try.
    /// Deadlines (schedule-to-close) are the caller's to check.
    pub fn retries(&self, failure: &crate::Failure, attempt: u32) -> bool {
        let allowed = self.retry_on.is_empty()
            || failure.kind != crate::FailureKind::Application
            || self.retry_on.contains(&failure.error_type);
        failure.retryable
            && allowed
            && !self.non_retryable_error_types.contains(&failure.error_type)
            && self.max_attempts.is_none_or(|max| attempt < max)
    }

    /// The wait before attempt `attempt + 1`, after attempt `attempt` (from 1) failed.
    /// `unit_random` is a number in `0.0..1.0` that spreads the wait by ±`jitter`.
    pub fn backoff(&self, attempt: u32, unit_random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1_000) as i32;
        let multiplier = if self.backoff_multiplier.is_finite() {
            self.backoff_multiplier.max(1.0)
        } else {
            1.0
        };
        let base = self.initial_backoff.as_secs_f64() * multiplier.powi(exponent);
        let capped = base.min(
            self.max_backoff
                .as_secs_f64()
                .max(self.initial_backoff.as_secs_f64()),
        );
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let spread = 1.0 + jitter * (2.0 * unit_random.clamp(0.0, 1.0) - 1.0);
        Duration::try_from_secs_f64((capped * spread).max(0.0)).unwrap_or(self.max_backoff)
    }
}

/// Floats in history must be finite: NaN breaks equality (so replay could not compare it)
/// and JSON cannot represent NaN or infinity. Finite values encode exactly as plain `f64`.
pub(crate) mod finite {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else {
            Err(serde::ser::Error::custom(format!(
                "{value} is not a finite number"
            )))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(serde::de::Error::custom(format!(
                "{value} is not a finite number"
            )))
        }
    }
}

/// Everything recorded about how an activity may run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityOptions {
    /// Retry policy for failed attempts.
    pub retry: RetryPolicy,
    /// Longest one attempt may run, heartbeats or not: at its end the worker cancels the
    /// attempt and refuses what it returns after, and the attempt times out
    /// (`TimeoutKind::StartToClose`).
    pub start_to_close: Option<Duration>,
    /// Longest the activity may take over all attempts, waits included.
    pub schedule_to_close: Option<Duration>,
    /// Longest a running attempt may go without a heartbeat (one at or above
    /// `start_to_close` never fires: the attempt's time runs out first).
    pub heartbeat_timeout: Option<Duration>,
    /// Longest an attempt may wait to be taken by a worker (from when it is due); then the
    /// activity times out (`TimeoutKind::ScheduleToStart`), not retried: no worker serves
    /// it, and another attempt would wait the same.
    #[serde(default)]
    pub schedule_to_start: Option<Duration>,
}

impl ActivityOptions {
    /// Whether it sets nothing the first stored shape of options lacks (`retry_on`, a
    /// schedule-to-start timeout): such options are stored in that shape, byte for byte
    /// as before (see `stored_options.rs`).
    pub(crate) fn fits_first_shape(&self) -> bool {
        self.retry.retry_on.is_empty() && self.schedule_to_start.is_none()
    }
}

/// Which timeout ended an activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeoutKind {
    /// One attempt ran past its start-to-close timeout (and no attempts were left).
    StartToClose,
    /// The activity as a whole ran past its schedule-to-close timeout.
    ScheduleToClose,
    /// A running attempt stopped heartbeating (and no attempts were left).
    Heartbeat,
    /// No worker took an attempt within its schedule-to-start timeout.
    ScheduleToStart,
}

impl TimeoutKind {
    /// The failure that stands for this timeout of an attempt: what a retry policy is asked
    /// about, and what an activity timed out by its schedule-to-close deadline reports as its
    /// last failure when no attempt failed before.
    pub fn failure(self, attempt: u32) -> crate::Failure {
        crate::Failure::of_kind(
            crate::FailureKind::TimedOut,
            format!("{self:?} timeout of attempt {attempt}"),
        )
        .retryable(true)
    }
}

/// What makes a workflow's deadlines and retry policy unusable, as every starter refuses
/// them: a zero timeout (a deadline passed as the run starts is a mistake, not a wish), or a
/// retry policy with a [`RetryPolicy::problem`].
pub fn workflow_terms_problem(
    run_timeout: Option<Duration>,
    execution_timeout: Option<Duration>,
    retry: Option<&RetryPolicy>,
) -> Option<String> {
    for (what, timeout) in [
        ("run timeout", run_timeout),
        ("execution timeout", execution_timeout),
    ] {
        if timeout.is_some_and(|t| t.is_zero()) {
            return Some(format!("the {what} must be longer than zero"));
        }
    }
    retry.and_then(RetryPolicy::problem)
}

/// Which of a workflow's deadlines closed a run ([`crate::WorkflowTimedOut`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkflowTimeout {
    /// The run timeout: one run, from its first step, ran too long.
    Run,
    /// The execution timeout: the workflow, from its first run's first step across
    /// continue-as-new and retries, ran too long.
    Execution,
}

impl WorkflowTimeout {
    /// What a failure standing for this timeout says (a parent's child failure, a caller's
    /// error).
    pub fn reason(self) -> String {
        match self {
            WorkflowTimeout::Run => "the workflow run reached its run timeout".to_string(),
            WorkflowTimeout::Execution => "the workflow reached its execution timeout".to_string(),
        }
    }

    /// The failure this timeout stands for, as a workflow retry policy sees it: a run timeout
    /// may be retried, the execution timeout never (it bounds every attempt).
    pub fn failure(self) -> crate::Failure {
        crate::Failure::of_kind(crate::FailureKind::TimedOut, self.reason())
            .retryable(self == WorkflowTimeout::Run)
    }
}

/// What happens to a child workflow when its parent closes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParentClosePolicy {
    /// Terminate the child.
    #[default]
    Terminate,
    /// Ask the child to cancel; it may clean up.
    RequestCancel,
    /// Let the child run on.
    Abandon,
}

/// Why a run exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOrigin {
    /// Started by a client (or as a child: see `WorkflowStarted::parent`).
    Client,
    /// The next run of a workflow that continued as new.
    ContinuedAsNew {
        /// The run that continued.
        previous_run_id: RunId,
    },
    /// A reset of a run: its history up to `reset_to`, then live again.
    Reset {
        /// The run that was reset.
        source_run_id: RunId,
        /// The last event of the source run that the new run keeps.
        reset_to: Seq,
    },
    /// Started by a schedule's firing (see `reprise-schedule`).
    Scheduled {
        /// The schedule that fired.
        schedule_id: ScheduleId,
        /// The time the firing was scheduled for (before jitter): the run's workflow id
        /// is derived from it.
        scheduled_at: Timestamp,
    },
    /// A retry of a run that failed, by its workflow's retry policy: same input, a new run.
    Retried {
        /// The run that failed.
        previous_run_id: RunId,
        /// This run's attempt, from 1 (the first run): 2 for the first retry.
        attempt: u32,
    },
}

/// The parent of a child workflow run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRun {
    /// The parent's workflow id.
    pub workflow_id: WorkflowId,
    /// The parent's run.
    pub run_id: RunId,
    /// The seq of the parent's `ChildWorkflowStarted` event for this child.
    pub started_seq: Seq,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Limits, Payload};

    #[test]
    fn backoff_grows_caps_and_spreads() {
        let policy = RetryPolicy {
            max_attempts: Some(4),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            backoff_multiplier: 3.0,
            jitter: 0.5,
            non_retryable_error_types: vec!["Fatal".into()],
            retry_on: Vec::new(),
        };
        assert_eq!(policy.backoff(1, 0.5), Duration::from_secs(1));
        assert_eq!(policy.backoff(2, 0.5), Duration::from_secs(3));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_secs(9));
        assert_eq!(policy.backoff(4, 0.5), Duration::from_secs(10), "capped");
        assert_eq!(
            policy.backoff(2, 0.0),
            Duration::from_secs_f64(1.5),
            "-50 %"
        );
        assert_eq!(
            policy.backoff(2, 1.0),
            Duration::from_secs_f64(4.5),
            "+50 %"
        );
        assert_eq!(policy.backoff(u32::MAX, 0.5), Duration::from_secs(10));
    }

    #[test]
    fn retries_respect_attempts_types_and_retryability() {
        let policy = RetryPolicy {
            max_attempts: Some(3),
            non_retryable_error_types: vec!["Fatal".into()],
            ..RetryPolicy::default()
        };
        let busy = crate::Failure::application("Busy", "later");
        assert!(policy.retries(&busy, 1));
        assert!(policy.retries(&busy, 2));
        assert!(!policy.retries(&busy, 3), "three attempts made");
        assert!(!policy.retries(&crate::Failure::application("Fatal", "no"), 1));
        assert!(!policy.retries(&busy.clone().retryable(false), 1));
        assert!(
            RetryPolicy::default().retries(&busy, 1_000_000),
            "unlimited by default"
        );
    }

    #[test]
    fn retry_on_allows_only_its_application_error_types_and_every_timeout() {
        let policy = RetryPolicy {
            retry_on: vec!["Busy".into()],
            non_retryable_error_types: vec!["Busy".into()],
            ..RetryPolicy::default()
        };
        let only = RetryPolicy {
            non_retryable_error_types: Vec::new(),
            ..policy.clone()
        };
        assert!(only.retries(&crate::Failure::application("Busy", "later"), 1));
        assert!(!only.retries(&crate::Failure::application("Declined", "no"), 1));
        assert!(
            only.retries(&TimeoutKind::StartToClose.failure(1), 1),
            "timeouts are not application errors"
        );
        assert!(
            !policy.retries(&crate::Failure::application("Busy", "later"), 1),
            "the deny-list wins"
        );
    }

    #[test]
    fn non_finite_floats_are_refused_both_ways() {
        let policy = RetryPolicy {
            backoff_multiplier: f64::NAN,
            ..RetryPolicy::default()
        };
        let err = Payload::encode(&policy, &Limits::DEFAULT).unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        assert!(err.to_string().contains("not a finite number"), "{err}");

        // Bytes carrying a NaN (as a corrupt or hostile old bincode row might) do not decode.
        let finite = crate::codec::encode("payload", &RetryPolicy::default()).unwrap();
        let two = 2.0f64.to_le_bytes();
        let at = finite.windows(8).position(|w| w == two).unwrap();
        let mut bytes = finite.clone();
        bytes[at..at + 8].copy_from_slice(&f64::NAN.to_le_bytes());
        let err = Payload::from_bytes(bytes)
            .unwrap()
            .decode::<RetryPolicy>()
            .unwrap_err();
        assert!(err.to_string().contains("not a finite number"), "{err}");
    }
}
