//! Updates: a call into a running workflow, answered by its handler after it did its work
//! (see `reprise_sdk::WorkflowContext::on_update` and `store/updates.rs`).

use std::time::Duration;

use reprise_history::{Payload, RunState, UpdateAccepted, UpdateId, UpdateName, UpdateOutcome};
use reprise_sdk::UpdateDef;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::store::{RunEnd, UpdateState, on_live_connection, or_wait_again};

impl Client {
    /// Sends an update to a workflow's open run and waits for its handler's result. The
    /// update is checked first (a handler of its name, an input it decodes, the validator):
    /// a refused one is [`Error::UpdateRejected`] and nothing is recorded. An accepted one
    /// is recorded in history and its handler runs (it may call activities, sleep, wait); if
    /// the engine running it dies, another finishes it and this call still returns the
    /// result. A handler's error is [`Error::UpdateFailed`]. The id is drawn at random: use
    /// [`Client::update_with_id`] to send an update that runs once however often it is sent.
    pub async fn update<I: Serialize, O: DeserializeOwned>(
        &self,
        workflow_id: &str,
        def: UpdateDef<I, O>,
        input: &I,
    ) -> Result<O> {
        let update_id = uuid::Uuid::new_v4().to_string();
        self.update_with_id(workflow_id, &update_id, def, input)
            .await
    }

    /// [`Client::update`] with the caller's id: sent again with the same id (a retry after a
    /// timeout, a crash), the update is not sent twice; the call waits for the first one's
    /// outcome (whatever input the later call gave).
    pub async fn update_with_id<I: Serialize, O: DeserializeOwned>(
        &self,
        workflow_id: &str,
        update_id: &str,
        def: UpdateDef<I, O>,
        input: &I,
    ) -> Result<O> {
        let input = self.converter.to_payload(input)?;
        let result = self
            .update_payload(workflow_id, update_id, def.name(), input)
            .await?;
        self.converter
            .from_payload(&result)
            .map_err(|source| Error::UndecodablePayload {
                what: format!(
                    "result of update {:?} of workflow {workflow_id:?}",
                    def.name()
                ),
                rust_type: std::any::type_name::<O>(),
                source: Box::new(source),
            })
    }

    /// [`Client::update_with_id`] giving up after `deadline` with [`Error::Timeout`] (the
    /// update goes on: call again with its id to wait for it).
    pub async fn update_within<I: Serialize, O: DeserializeOwned>(
        &self,
        workflow_id: &str,
        update_id: &str,
        def: UpdateDef<I, O>,
        input: &I,
        deadline: Duration,
    ) -> Result<O> {
        match tokio::time::timeout(
            deadline,
            self.update_with_id(workflow_id, update_id, def, input),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: format!("update {update_id:?} of workflow {workflow_id:?}"),
                after: deadline,
            }),
        }
    }

    /// An update with its input and result as payloads (for tools: the CLI, the UI).
    pub(crate) async fn update_payload(
        &self,
        workflow_id: &str,
        update_id: &str,
        name: &str,
        input: Payload,
    ) -> Result<Payload> {
        let update = UpdateAccepted {
            update_id: UpdateId::new(update_id)?,
            name: UpdateName::new(name)?,
            input,
        };
        let run_id = self.open_run_id(workflow_id).await?;
        let store = &self.store;
        // Watching starts before the update is sent: its outcome, however quick, wakes this
        // wait (the answers channel names the run), as does the run's close.
        let watch = self.waiters()?.watch(run_id);
        on_live_connection!(store, store.request_update(run_id, &update))?;
        let unfinished = |status| Error::UpdateNotFinished {
            workflow_id: workflow_id.to_string(),
            update: name.to_string(),
            status,
        };
        let failed = |reason| Error::UpdateRejected {
            workflow_id: workflow_id.to_string(),
            update: name.to_string(),
            reason,
        };
        let finished = |state: Option<UpdateState>| -> Option<Result<Payload>> {
            match state? {
                UpdateState::Finished(UpdateOutcome::Completed(result)) => Some(Ok(result)),
                UpdateState::Finished(UpdateOutcome::Failed(failure)) => {
                    Some(Err(Error::UpdateFailed {
                        workflow_id: workflow_id.to_string(),
                        update: name.to_string(),
                        failure: Box::new(failure),
                    }))
                }
                UpdateState::Refused(refusal) => Some(Err(failed(refusal))),
                UpdateState::Requested | UpdateState::Accepted => None,
            }
        };
        let mut backoff = Backoff::default();
        loop {
            let notified = watch.notify().notified();
            let state = or_wait_again!(store, backoff, store.update_state(run_id, update_id));
            if let Some(outcome) = finished(state) {
                return outcome;
            }
            // Not finished: it will be, unless the run closed (or is parked) first.
            let end = or_wait_again!(store, backoff, store.run_end(run_id));
            if !matches!(
                end,
                Some(RunEnd::Open {
                    parked_reason: None
                })
            ) {
                // The step that closed (or a later one that parked) the run may have
                // finished the update after the first read: read again first.
                let state = or_wait_again!(store, backoff, store.update_state(run_id, update_id));
                if let Some(outcome) = finished(state) {
                    return outcome;
                }
            }
            match end {
                Some(RunEnd::Open {
                    parked_reason: Some(reason),
                }) => {
                    return Err(Error::WorkflowParked {
                        workflow_id: workflow_id.to_string(),
                        run_id,
                        reason,
                    });
                }
                Some(RunEnd::Open {
                    parked_reason: None,
                }) => {}
                Some(RunEnd::ContinuedAs(_)) => {
                    return Err(unfinished(RunState::ContinuedAsNew));
                }
                Some(RunEnd::Closed(event)) => {
                    let status = RunState::closed_by(&event.kind).unwrap_or(RunState::Completed);
                    return Err(unfinished(status));
                }
                None => {
                    return Err(Error::UnknownWorkflow {
                        workflow_id: workflow_id.to_string(),
                    });
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
    }
}
