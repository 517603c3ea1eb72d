//! Local activities: activity code the host runs inline, inside the step that schedules it,
//! while it holds the run. No task row, no worker, no queue: the decision
//! (`LocalActivityScheduled`) and its outcome (`ActivityCompleted`, `ActivityFailed`,
//! `ActivityTimedOut`, or a `LocalActivityBackoff`) are written by the same step.
//!
//! The rules live here, once, for both hosts (the engine runs attempts on tokio, `TestEnv`
//! in virtual time): [`LocalActivityRequest::run`] is the attempt loop, given how to run one
//! attempt, what time it is and how to wait. Retries whose waits fit in
//! [`LocalActivityOptions::in_step_retry_window`] happen inside the step; a longer wait ends
//! the step with a `LocalActivityBackoff`, after which the workflow's own code sleeps on a
//! durable timer (the run is released) and schedules the activity again with the next
//! attempt number. A crash mid-way writes nothing, so the next step runs it again:
//! at-least-once, like activities, and never recorded twice.

use std::future::Future;
use std::time::Duration;

use reprise_history::{
    ActivityCompleted, ActivityFailed, ActivityTimedOut, ActivityType, EventKind, Failure,
    LocalActivityBackoff, Payload, RetryPolicy, RunId, Seq, TimeoutKind, Timestamp, WorkflowId,
};

use crate::activity::ActivityInfo;

/// How a local activity may run. Options are not recorded: replay never needs them.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalActivityOptions {
    /// Retry policy for failed attempts (the activities' default).
    pub retry: RetryPolicy,
    /// Longest one attempt may run (default 10 s). The step holds its run meanwhile, so keep
    /// local activities short: long work belongs in an activity.
    pub start_to_close: Duration,
    /// Longest the local activity may take over all attempts and waits, durable ones
    /// included, from its first scheduling.
    pub schedule_to_close: Option<Duration>,
    /// How long retries may wait in total inside one step (default 1 s). A retry that would
    /// wait longer ends the step and waits on a durable timer instead, releasing the run.
    pub in_step_retry_window: Duration,
}

impl Default for LocalActivityOptions {
    fn default() -> Self {
        LocalActivityOptions {
            retry: RetryPolicy::default(),
            start_to_close: Duration::from_secs(10),
            schedule_to_close: None,
            in_step_retry_window: Duration::from_secs(1),
        }
    }
}

/// How one attempt ended.
#[derive(Debug)]
pub enum AttemptEnd {
    /// It returned a result.
    Completed(Payload),
    /// It returned an error (or panicked: a failure of kind `Panicked`).
    Failed(Failure),
    /// It ran past its time (the `timeout` given to the attempt).
    TimedOut,
}

impl AttemptEnd {
    /// An attempt whose code panicked with `panic` (what `catch_unwind` caught): a failed
    /// attempt of kind `Panicked`, retryable, with the panic's message.
    pub fn panicked(panic: &(dyn std::any::Any + Send)) -> AttemptEnd {
        let message = crate::executor::panic_message(panic);
        AttemptEnd::Failed(
            Failure::of_kind(
                reprise_history::FailureKind::Panicked,
                format!("the activity panicked: {message}"),
            )
            .retryable(true),
        )
    }
}

/// A local activity the workflow waits on, for its host to run before the step is written
/// (see [`crate::Execution::take_local_activities`]).
#[derive(Clone, Debug)]
pub struct LocalActivityRequest {
    /// The seq of this `LocalActivityScheduled`: the outcome refers to it.
    pub scheduled: Seq,
    /// Which activity code runs it.
    pub activity_type: ActivityType,
    /// Its input.
    pub input: Payload,
    /// The first attempt to run now (1, or the attempt after a durable backoff).
    pub attempt: u32,
    /// How it may run.
    pub options: LocalActivityOptions,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) run_id: RunId,
    /// The seq of the call's first scheduling: every attempt's idempotency key.
    pub(crate) first_scheduled: Seq,
    /// When the call was first scheduled: its schedule-to-close deadline counts from here.
    pub(crate) first_scheduled_at: Timestamp,
}

/// What follows a failed attempt.
#[derive(Debug, PartialEq)]
enum AfterFailure {
    /// Try again inside the step after this wait.
    RetryIn(Duration),
    /// The step records this outcome.
    Record(Box<EventKind>),
}

impl LocalActivityRequest {
    /// What attempt `attempt` knows of itself; the idempotency key is the same for every
    /// attempt of the call, durable backoffs included.
    pub fn info(&self, attempt: u32) -> ActivityInfo {
        ActivityInfo {
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id,
            scheduled_seq: self.first_scheduled,
            activity_type: self.activity_type.clone(),
            attempt,
        }
    }

    /// When the schedule-to-close timeout runs out, if there is one.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.options
            .schedule_to_close
            .map(|d| self.first_scheduled_at.saturating_add(d))
    }

    /// How long an attempt starting at `now` may run: its start-to-close timeout, cut to what
    /// is left before the deadline; `None` once the deadline has passed.
    fn attempt_timeout(&self, now: Timestamp) -> Option<Duration> {
        let Some(deadline) = self.deadline() else {
            return Some(self.options.start_to_close);
        };
        let left = deadline.as_unix_micros() - now.as_unix_micros();
        let left = Duration::from_micros(u64::try_from(left).ok().filter(|l| *l > 0)?);
        Some(left.min(self.options.start_to_close))
    }

    fn timed_out(&self, timeout: TimeoutKind, attempt: u32, last: Option<Failure>) -> EventKind {
        EventKind::ActivityTimedOut(ActivityTimedOut {
            scheduled: self.scheduled,
            timeout,
            attempt,
            last_failure: Some(last.unwrap_or_else(|| timeout.failure(attempt))),
            last_heartbeat: None,
        })
    }

    /// The rules after attempt `attempt` failed at `now`, retries having waited `waited` in
    /// this step so far; `unit_random` (in `0.0..1.0`) spreads the backoff by its jitter.
    fn after_failure(
        &self,
        failure: Failure,
        timed_out: bool,
        attempt: u32,
        now: Timestamp,
        waited: Duration,
        unit_random: f64,
    ) -> AfterFailure {
        if !self.options.retry.retries(&failure, attempt) {
            return AfterFailure::Record(Box::new(if timed_out {
                self.timed_out(TimeoutKind::StartToClose, attempt, Some(failure))
            } else {
                EventKind::ActivityFailed(ActivityFailed {
                    scheduled: self.scheduled,
                    failure,
                    attempt,
                })
            }));
        }
        let backoff = self.options.retry.backoff(attempt, unit_random);
        if self
            .deadline()
            .is_some_and(|d| now.saturating_add(backoff) >= d)
        {
            return AfterFailure::Record(Box::new(self.timed_out(
                TimeoutKind::ScheduleToClose,
                attempt,
                Some(failure),
            )));
        }
        if waited.saturating_add(backoff) <= self.options.in_step_retry_window {
            return AfterFailure::RetryIn(backoff);
        }
        AfterFailure::Record(Box::new(EventKind::LocalActivityBackoff(
            LocalActivityBackoff {
                scheduled: self.scheduled,
                failure,
                attempt,
                backoff,
            },
        )))
    }

    /// Runs attempts until one outcome is for the step to record: `attempt(n, timeout)` runs
    /// attempt `n` within `timeout`, `now()` says what time it is, `sleep(d)` waits between
    /// attempts, `unit_random()` draws the backoff's jitter. Returns the input to deliver with
    /// [`crate::Execution::resolve_local_activity`].
    pub async fn run<A, AF, S, SF>(
        &self,
        mut attempt: A,
        now: impl Fn() -> Timestamp,
        mut sleep: S,
        mut unit_random: impl FnMut() -> f64,
    ) -> EventKind
    where
        A: FnMut(u32, Duration) -> AF,
        AF: Future<Output = AttemptEnd>,
        S: FnMut(Duration) -> SF,
        SF: Future<Output = ()>,
    {
        let mut number = self.attempt.max(1);
        let mut waited = Duration::ZERO;
        let mut last_failure = None;
        loop {
            let Some(timeout) = self.attempt_timeout(now()) else {
                let made = number.saturating_sub(1);
                return self.timed_out(TimeoutKind::ScheduleToClose, made, last_failure);
            };
            let (failure, timed_out) = match attempt(number, timeout).await {
                AttemptEnd::Completed(result) => {
                    return EventKind::ActivityCompleted(ActivityCompleted {
                        scheduled: self.scheduled,
                        result,
                        attempt: number,
                    });
                }
                AttemptEnd::Failed(failure) => (failure, false),
                AttemptEnd::TimedOut => (TimeoutKind::StartToClose.failure(number), true),
            };
            let next = self.after_failure(
                failure.clone(),
                timed_out,
                number,
                now(),
                waited,
                unit_random(),
            );
            match next {
                AfterFailure::Record(outcome) => return *outcome,
                AfterFailure::RetryIn(wait) => {
                    sleep(wait).await;
                    waited = waited.saturating_add(wait);
                    last_failure = Some(failure);
                    number = number.saturating_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn request(options: LocalActivityOptions) -> LocalActivityRequest {
        LocalActivityRequest {
            scheduled: Seq::new(5),
            activity_type: ActivityType::new("price").unwrap(),
            input: Payload::unit(),
            attempt: 1,
            options,
            workflow_id: WorkflowId::new("wf").unwrap(),
            run_id: RunId::random(),
            first_scheduled: Seq::new(2),
            first_scheduled_at: Timestamp::from_unix_micros(0),
        }
    }

    fn retry(initial: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts: Some(4),
            initial_backoff: initial,
            max_backoff: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            jitter: 0.0,
            non_retryable_error_types: vec![],
            retry_on: Vec::new(),
        }
    }

    /// Runs the loop in virtual time: each attempt fails until `succeed_at`.
    fn run(req: &LocalActivityRequest, succeed_at: u32) -> (EventKind, Vec<u32>, Duration) {
        let clock = Cell::new(0i64);
        let attempts = std::cell::RefCell::new(Vec::new());
        let outcome = futures::executor::block_on(req.run(
            |n, _timeout| {
                attempts.borrow_mut().push(n);
                async move {
                    if n >= succeed_at {
                        AttemptEnd::Completed(Payload::unit())
                    } else {
                        AttemptEnd::Failed(Failure::application("Busy", "later"))
                    }
                }
            },
            || Timestamp::from_unix_micros(clock.get()),
            |d| {
                clock.set(clock.get() + d.as_micros() as i64);
                async {}
            },
            || 0.5,
        ));
        let waited = Duration::from_micros(clock.get() as u64);
        (outcome, attempts.into_inner(), waited)
    }

    #[test]
    fn retries_inside_the_window_happen_in_the_step() {
        let req = request(LocalActivityOptions {
            retry: retry(Duration::from_millis(100)),
            ..LocalActivityOptions::default()
        });
        let (outcome, attempts, waited) = run(&req, 3);
        assert_eq!(attempts, [1, 2, 3]);
        assert_eq!(waited, Duration::from_millis(300));
        assert!(matches!(outcome, EventKind::ActivityCompleted(c) if c.attempt == 3));
    }

    #[test]
    fn a_wait_past_the_window_is_a_durable_backoff() {
        let req = request(LocalActivityOptions {
            retry: retry(Duration::from_millis(400)),
            ..LocalActivityOptions::default()
        });
        // Waits 400 ms, then 800 ms would make 1.2 s > 1 s: the second failure backs off.
        let (outcome, attempts, _) = run(&req, 10);
        assert_eq!(attempts, [1, 2]);
        let EventKind::LocalActivityBackoff(b) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            (b.attempt, b.backoff, b.scheduled),
            (2, Duration::from_millis(800), Seq::new(5))
        );
    }

    #[test]
    fn the_last_attempt_fails_for_good_and_a_deadline_times_it_out() {
        let req = request(LocalActivityOptions {
            retry: retry(Duration::from_millis(1)),
            ..LocalActivityOptions::default()
        });
        let (outcome, attempts, _) = run(&req, 10);
        assert_eq!(attempts, [1, 2, 3, 4]);
        assert!(matches!(outcome, EventKind::ActivityFailed(f) if f.attempt == 4));

        let req = request(LocalActivityOptions {
            retry: retry(Duration::from_millis(100)),
            schedule_to_close: Some(Duration::from_millis(250)),
            ..LocalActivityOptions::default()
        });
        let (outcome, attempts, _) = run(&req, 10);
        assert_eq!(attempts, [1, 2], "the third would start past the deadline");
        let EventKind::ActivityTimedOut(t) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(t.timeout, TimeoutKind::ScheduleToClose);
        assert_eq!(t.last_failure.map(|f| f.error_type), Some("Busy".into()));
    }

    #[test]
    fn an_attempt_is_given_what_is_left_before_the_deadline() {
        let req = request(LocalActivityOptions {
            schedule_to_close: Some(Duration::from_secs(3)),
            ..LocalActivityOptions::default()
        });
        let at = |micros| Timestamp::from_unix_micros(micros);
        assert_eq!(req.attempt_timeout(at(0)), Some(Duration::from_secs(3)));
        assert_eq!(
            req.attempt_timeout(at(2_500_000)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(req.attempt_timeout(at(3_000_000)), None);
        let unbounded = request(LocalActivityOptions::default());
        assert_eq!(
            unbounded.attempt_timeout(at(9)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            unbounded.info(3).scheduled_seq,
            Seq::new(2),
            "the first scheduling's key"
        );
    }
}
