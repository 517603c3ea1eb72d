//! Child starts as first stored: `ChildWorkflowStarted` before deadlines and retries
//! (variant 11); a child start that sets none is still written in it, others as variant 31,
//! `ChildWorkflowStartedWithOptions`.
//!
//! Activity options as first stored: bincode keeps no field names, so the options stored in
//! `ActivityScheduled` (variants 1 and 24) and in task rows keep the shape they had before
//! `RetryPolicy::retry_on` and `ActivityOptions::schedule_to_start`. Options that set neither
//! are still written in it, byte for byte; options that set one take a newer carrier (event
//! variant 30, `ActivityScheduledWithOptions`; JSON in a task row).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::ChildWorkflowStarted;
use crate::ids::{RunId, TaskQueue, WorkflowId, WorkflowType};
use crate::options::{ActivityOptions, ParentClosePolicy, RetryPolicy};
use crate::payload::Payload;

/// `ChildWorkflowStarted` as first stored: the fields before the deadlines, in order.
#[derive(Deserialize)]
#[serde(rename = "ChildWorkflowStarted")]
pub(crate) struct ChildStartedV1 {
    workflow_type: WorkflowType,
    workflow_id: WorkflowId,
    run_id: RunId,
    input: Payload,
    task_queue: TaskQueue,
    parent_close_policy: ParentClosePolicy,
}

/// [`ChildStartedV1`], borrowed, for writing.
#[derive(Serialize)]
#[serde(rename = "ChildWorkflowStarted")]
pub(crate) struct ChildStartedV1Ref<'a> {
    workflow_type: &'a WorkflowType,
    workflow_id: &'a WorkflowId,
    run_id: &'a RunId,
    input: &'a Payload,
    task_queue: &'a TaskQueue,
    parent_close_policy: &'a ParentClosePolicy,
}

impl<'a> From<&'a ChildWorkflowStarted> for ChildStartedV1Ref<'a> {
    /// The first shape of `c`, dropping what it cannot hold: callers check
    /// `ChildWorkflowStarted::fits_first_shape` first.
    fn from(c: &'a ChildWorkflowStarted) -> Self {
        ChildStartedV1Ref {
            workflow_type: &c.workflow_type,
            workflow_id: &c.workflow_id,
            run_id: &c.run_id,
            input: &c.input,
            task_queue: &c.task_queue,
            parent_close_policy: &c.parent_close_policy,
        }
    }
}

impl From<ChildStartedV1> for ChildWorkflowStarted {
    fn from(v1: ChildStartedV1) -> Self {
        ChildWorkflowStarted {
            workflow_type: v1.workflow_type,
            workflow_id: v1.workflow_id,
            run_id: v1.run_id,
            input: v1.input,
            task_queue: v1.task_queue,
            parent_close_policy: v1.parent_close_policy,
            run_timeout: None,
            execution_timeout: None,
            retry: None,
        }
    }
}

/// `RetryPolicy` as first stored: the fields before `retry_on`, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename = "RetryPolicy")]
pub(crate) struct RetryPolicyV1 {
    max_attempts: Option<u32>,
    initial_backoff: Duration,
    max_backoff: Duration,
    #[serde(with = "crate::options::finite")]
    backoff_multiplier: f64,
    #[serde(with = "crate::options::finite")]
    jitter: f64,
    non_retryable_error_types: Vec<String>,
}

/// `ActivityOptions` as first stored: the fields before `schedule_to_start`, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename = "ActivityOptions")]
pub(crate) struct ActivityOptionsV1 {
    retry: RetryPolicyV1,
    start_to_close: Option<Duration>,
    schedule_to_close: Option<Duration>,
    heartbeat_timeout: Option<Duration>,
}

impl From<&ActivityOptions> for ActivityOptionsV1 {
    /// The first shape of `options`, dropping what it cannot hold: callers check
    /// `ActivityOptions::fits_first_shape` first.
    fn from(options: &ActivityOptions) -> Self {
        let retry = &options.retry;
        ActivityOptionsV1 {
            retry: RetryPolicyV1 {
                max_attempts: retry.max_attempts,
                initial_backoff: retry.initial_backoff,
                max_backoff: retry.max_backoff,
                backoff_multiplier: retry.backoff_multiplier,
                jitter: retry.jitter,
                non_retryable_error_types: retry.non_retryable_error_types.clone(),
            },
            start_to_close: options.start_to_close,
            schedule_to_close: options.schedule_to_close,
            heartbeat_timeout: options.heartbeat_timeout,
        }
    }
}

impl From<ActivityOptionsV1> for ActivityOptions {
    fn from(v1: ActivityOptionsV1) -> Self {
        let retry = v1.retry;
        ActivityOptions {
            retry: RetryPolicy {
                max_attempts: retry.max_attempts,
                initial_backoff: retry.initial_backoff,
                max_backoff: retry.max_backoff,
                backoff_multiplier: retry.backoff_multiplier,
                jitter: retry.jitter,
                non_retryable_error_types: retry.non_retryable_error_types,
                retry_on: Vec::new(),
            },
            start_to_close: v1.start_to_close,
            schedule_to_close: v1.schedule_to_close,
            heartbeat_timeout: v1.heartbeat_timeout,
            schedule_to_start: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_shape_options_round_trip_through_it() {
        let options = ActivityOptions {
            retry: RetryPolicy {
                max_attempts: Some(3),
                non_retryable_error_types: vec!["Fatal".into()],
                ..RetryPolicy::default()
            },
            start_to_close: Some(Duration::from_secs(5)),
            schedule_to_close: None,
            heartbeat_timeout: Some(Duration::from_secs(1)),
            schedule_to_start: None,
        };
        assert!(options.fits_first_shape());
        let back = ActivityOptions::from(ActivityOptionsV1::from(&options));
        assert_eq!(back, options);
        let with_allow_list = ActivityOptions {
            retry: RetryPolicy {
                retry_on: vec!["Busy".into()],
                ..RetryPolicy::default()
            },
            ..ActivityOptions::default()
        };
        assert!(!with_allow_list.fits_first_shape());
        let waiting = ActivityOptions {
            schedule_to_start: Some(Duration::from_secs(9)),
            ..ActivityOptions::default()
        };
        assert!(!waiting.fits_first_shape());
    }
}
