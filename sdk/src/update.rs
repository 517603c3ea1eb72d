//! Updates: a call into a running workflow that its handler answers after doing work (it may
//! run activities, sleep, wait), recorded in history and so answered durably, on whichever
//! engine finishes it.
//!
//! An update arrives as an input. Live, the step first checks it: a handler of its name must
//! be registered, its input must decode, and the validator (if any) must pass. A refused update
//! is never recorded: the step reports the refusal ([`UpdateRejection`]) and goes on. An
//! accepted one is recorded (`UpdateAccepted`) and its handler runs beside the workflow's main
//! code, polled by the executor after it in every round; when it returns, the step decides
//! `UpdateCompleted` with the outcome. Replay re-runs the handler from the recorded acceptance
//! and must reach the same completion, as for any decision.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use reprise_history::{
    DataConverter, Failure, FailureKind, Payload, Seq, UpdateAccepted, UpdateCompleted, UpdateId,
    UpdateOutcome,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::WorkflowContext;
use crate::error::WorkflowError;
use crate::nondeterminism::{Nondeterminism, NondeterminismKind};
use crate::query::{WorkflowState, list_names};
use crate::state::Shared;

/// Why an update was refused before anything was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateRefusal {
    /// The workflow has registered no handler of this name (yet, or in this run).
    #[error("the workflow handles no update {name:?} (it handles: {})", list_names(.registered))]
    UnknownUpdate {
        /// The name sent.
        name: String,
        /// The names it handles, sorted.
        registered: Vec<String>,
    },
    /// The input does not decode as the handler's input type.
    #[error("the input of update {name:?} does not decode: {message}")]
    UndecodableInput {
        /// The update.
        name: String,
        /// serde's or the codec's message.
        message: String,
    },
    /// The workflow's validator refused it.
    #[error("update {name:?} was rejected: {reason}")]
    Rejected {
        /// The update.
        name: String,
        /// The validator's reason.
        reason: String,
    },
    /// The validator panicked (the update is refused; the run goes on).
    #[error("the validator of update {name:?} panicked: {message}")]
    Panicked {
        /// The update.
        name: String,
        /// The panic message.
        message: String,
    },
}

/// An update refused by a step, for the host to tell its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRejection {
    /// The update's id.
    pub update_id: UpdateId,
    /// Why.
    pub refusal: UpdateRefusal,
}

/// Checks an update's input (decodes it, runs the validator) without recording anything.
type Check = Arc<dyn Fn(&DataConverter, &Payload) -> Result<(), UpdateRefusal> + Send + Sync>;
/// Starts an accepted update's handler: the context, the input, the seq that accepted it.
type Start =
    Arc<dyn Fn(WorkflowContext, Payload, Seq) -> BoxFuture<'static, UpdateOutcome> + Send + Sync>;

/// A handler as registered: how to check an input against its type, and how to run it.
#[derive(Clone)]
struct Handler {
    decodes: Check,
    start: Start,
}

/// The update handlers and validators a run has registered, by name.
#[derive(Clone, Default)]
pub(crate) struct UpdateHandlers {
    handlers: BTreeMap<String, Handler>,
    validators: BTreeMap<String, Check>,
}

impl UpdateHandlers {
    pub(crate) fn register<I, O, F, Fut>(&mut self, name: &'static str, handler: F)
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, WorkflowError>> + Send + 'static,
    {
        let decodes: Check = Arc::new(move |converter, input| {
            converter.from_payload::<I>(input).map(drop).map_err(|e| {
                UpdateRefusal::UndecodableInput {
                    name: name.to_string(),
                    message: e.to_string(),
                }
            })
        });
        let handler = Arc::new(handler);
        let start: Start = Arc::new(move |ctx: WorkflowContext, input: Payload, seq: Seq| {
            let handler = handler.clone();
            Box::pin(async move {
                let holder = || format!("input of update {name:?}");
                let Some(input) = ctx.decode_payload::<I>(&input, seq, holder) else {
                    // The step fails with the typed error; this future never ends.
                    return futures::future::pending().await;
                };
                let converter = ctx.converter();
                match handler(ctx, input).await {
                    Ok(output) => match converter.to_payload(&output) {
                        Ok(result) => UpdateOutcome::Completed(result),
                        Err(e) => UpdateOutcome::Failed(
                            Failure::application("UnencodableResult", e.to_string())
                                .retryable(false),
                        ),
                    },
                    Err(WorkflowError::Failed(failure)) => {
                        UpdateOutcome::Failed(converter.sealed_failure(failure))
                    }
                    Err(WorkflowError::Cancelled { .. }) => {
                        UpdateOutcome::Failed(Failure::of_kind(
                            FailureKind::Cancelled,
                            "the update's handler was cancelled",
                        ))
                    }
                    Err(WorkflowError::ContinueAsNew(_)) => UpdateOutcome::Failed(
                        Failure::application(
                            "ContinueAsNewInUpdate",
                            "an update's handler cannot continue the workflow as new",
                        )
                        .retryable(false),
                    ),
                }
            })
        });
        self.handlers
            .insert(name.to_string(), Handler { decodes, start });
    }

    pub(crate) fn validate<S, I>(
        &mut self,
        name: &'static str,
        state: &WorkflowState<S>,
        validator: fn(&S, &I) -> Result<(), String>,
    ) where
        S: Send + 'static,
        I: DeserializeOwned + 'static,
    {
        let state = state.clone();
        let check: Check = Arc::new(move |converter, input| {
            let input: I =
                converter
                    .from_payload(input)
                    .map_err(|e| UpdateRefusal::UndecodableInput {
                        name: name.to_string(),
                        message: e.to_string(),
                    })?;
            state
                .read(|s| validator(s, &input))
                .map_err(|reason| UpdateRefusal::Rejected {
                    name: name.to_string(),
                    reason,
                })
        });
        self.validators.insert(name.to_string(), check);
    }

    /// The checks an update of `name` must pass, to run outside the run's lock: `Err` when no
    /// handler of that name is registered.
    pub(crate) fn checks(&self, name: &str) -> Result<Vec<Check>, UpdateRefusal> {
        let handler = self
            .handlers
            .get(name)
            .ok_or_else(|| UpdateRefusal::UnknownUpdate {
                name: name.to_string(),
                registered: self.handlers.keys().cloned().collect(),
            })?;
        let mut checks = vec![handler.decodes.clone()];
        checks.extend(self.validators.get(name).cloned());
        Ok(checks)
    }

    /// How to start the handler of `name`, if one is registered.
    pub(crate) fn starter(&self, name: &str) -> Option<Start> {
        self.handlers.get(name).map(|h| h.start.clone())
    }
}

/// Runs an update's checks in order; a panic in one is a refusal.
fn run_checks(
    checks: &[Check],
    name: &str,
    converter: &DataConverter,
    input: &Payload,
) -> Result<(), UpdateRefusal> {
    for check in checks {
        match catch_unwind(AssertUnwindSafe(|| check(converter, input))) {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return Err(refusal),
            Err(panic) => {
                return Err(UpdateRefusal::Panicked {
                    name: name.to_string(),
                    message: crate::executor::panic_message(panic.as_ref()),
                });
            }
        }
    }
    Ok(())
}

/// An accepted update whose handler runs beside the workflow's main code.
pub(crate) struct RunningUpdate {
    accepted: Seq,
    update_id: UpdateId,
    handler: BoxFuture<'static, UpdateOutcome>,
}

/// Whether an update arriving live is to be recorded. It is not when it is refused (a handler
/// of its name, an input it decodes and the validator's consent are checked, outside the
/// run's lock: validators are user code), nor when the run accepted its id before (a retry
/// that reached a run reset past it runs once). What its caller is to be told then (the
/// refusal, or the first one's outcome when known) is queued on the run's state.
pub(crate) fn admit(shared: &Shared, update: &UpdateAccepted) -> bool {
    let seen = shared
        .lock()
        .accepted_updates
        .get(&update.update_id)
        .cloned();
    if let Some(outcome) = seen {
        if let Some(outcome) = outcome {
            let answer = (update.update_id.clone(), outcome);
            shared.lock().answers.push(answer);
        }
        return false;
    }
    let name = update.name.as_str();
    let checked = {
        let state = shared.lock();
        state
            .updates
            .checks(name)
            .map(|checks| (checks, state.converter.clone()))
    };
    let refusal = match checked {
        Ok((checks, converter)) => match run_checks(&checks, name, &converter, &update.input) {
            Ok(()) => return true,
            Err(refusal) => refusal,
        },
        Err(refusal) => refusal,
    };
    shared.lock().rejections.push(UpdateRejection {
        update_id: update.update_id.clone(),
        refusal,
    });
    false
}

/// Starts the handler of an update accepted at `seq`. Replaying, a recorded acceptance that
/// no registered handler takes fails the step as a nondeterminism (ND04).
pub(crate) fn start(shared: &Shared, seq: Seq, update: &UpdateAccepted) -> Option<RunningUpdate> {
    let starter = shared.lock().updates.starter(update.name.as_str());
    let Some(start) = starter else {
        shared.lock().fail(Nondeterminism {
            seq,
            kind: NondeterminismKind::UnexpectedInput {
                input: format!("UpdateAccepted({:?})", update.name.as_str()),
            },
            location: None,
        });
        return None;
    };
    shared
        .lock()
        .accepted_updates
        .insert(update.update_id.clone(), None);
    let handler = start(
        WorkflowContext::new(shared.clone()),
        update.input.clone(),
        seq,
    );
    Some(RunningUpdate {
        accepted: seq,
        update_id: update.update_id.clone(),
        handler,
    })
}

/// Polls each running handler once (fenced, and silent on replay, as the main code is);
/// returns the completions of those that finished, in acceptance order.
pub(crate) fn poll_running(
    updates: &mut Vec<RunningUpdate>,
    cx: &mut Context<'_>,
    replaying: bool,
    silent: &tracing::Dispatch,
) -> Vec<UpdateCompleted> {
    let mut finished = Vec::new();
    let mut i = 0;
    while i < updates.len() {
        let handler = &mut updates[i].handler;
        let polled = {
            let _fenced = crate::fence::enter();
            if replaying {
                tracing::dispatcher::with_default(silent, || handler.as_mut().poll(cx))
            } else {
                handler.as_mut().poll(cx)
            }
        };
        match polled {
            Poll::Ready(outcome) => {
                let done = updates.remove(i);
                finished.push(UpdateCompleted {
                    accepted: done.accepted,
                    update_id: done.update_id,
                    outcome,
                });
            }
            Poll::Pending => i += 1,
        }
    }
    finished
}
