//! Queries: a workflow's state read through the engines that run its type (see
//! `store/queries.rs` and `host/queries.rs`).

use std::time::Duration;

use reprise_history::{Payload, RunId, WorkflowId};
use reprise_sdk::QueryDef;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::store::{Asked, on_live_connection, or_wait_again};

/// How long [`Client::query`] waits for an answer.
pub const DEFAULT_QUERY_DEADLINE: Duration = Duration::from_secs(10);

impl Client {
    /// Asks the latest run of a workflow id a query and returns the answer: from the live
    /// orchestrator of an engine that caches the run, or from the run replayed from its
    /// history (closed runs too). Records nothing. Gives up after
    /// [`DEFAULT_QUERY_DEADLINE`] with [`Error::Timeout`] (no engine running the workflow's
    /// type answered); a query the workflow refuses is [`Error::QueryFailed`].
    pub async fn query<I: Serialize, O: DeserializeOwned>(
        &self,
        workflow_id: &str,
        def: QueryDef<I, O>,
        input: &I,
    ) -> Result<O> {
        self.query_within(workflow_id, def, input, DEFAULT_QUERY_DEADLINE)
            .await
    }

    /// [`Client::query`] with another deadline.
    pub async fn query_within<I: Serialize, O: DeserializeOwned>(
        &self,
        workflow_id: &str,
        def: QueryDef<I, O>,
        input: &I,
        deadline: Duration,
    ) -> Result<O> {
        let input = self.converter.to_payload(input)?;
        let answer = self
            .query_payload(workflow_id, def.name(), &input, deadline)
            .await?;
        self.converter
            .from_payload(&answer)
            .map_err(|source| Error::UndecodablePayload {
                what: format!(
                    "answer to query {:?} of workflow {workflow_id:?}",
                    def.name()
                ),
                rust_type: std::any::type_name::<O>(),
                source: Box::new(source),
            })
    }

    /// A query with its input and answer as payloads (for tools: the CLI, the UI).
    pub(crate) async fn query_payload(
        &self,
        workflow_id: &str,
        name: &str,
        input: &Payload,
        deadline: Duration,
    ) -> Result<Payload> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self.latest_run(&id).await?;
        let store = &self.store;
        let query_id = uuid::Uuid::new_v4();
        // Watching starts before the query is asked, so that an answer however quick wakes
        // this wait. The answers channel's waiters are keyed by the query's id.
        let watch = self.waiters()?.watch(RunId::from_uuid(query_id));
        let asked = || Asked {
            query_id,
            run_id: run.run_id,
            workflow_type: run.workflow_type.as_str(),
            name,
            input,
            expires_in: deadline,
        };
        on_live_connection!(store, store.ask_query(asked()))?;
        let until = tokio::time::Instant::now() + deadline;
        let mut backoff = Backoff::default();
        loop {
            let notified = watch.notify().notified();
            // A database that is away is waited for within the deadline, like a slow answer.
            let taken = if tokio::time::Instant::now() < until {
                or_wait_again!(store, backoff, store.take_answer(query_id))
            } else {
                on_live_connection!(store, store.take_answer(query_id))?
            };
            if let Some(answer) = taken {
                return answer.map_err(|reason| Error::QueryFailed {
                    workflow_id: workflow_id.to_string(),
                    query: name.to_string(),
                    reason,
                });
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                let _ = store.forget_query(query_id).await;
                return Err(Error::Timeout {
                    what: format!(
                        "an answer to query {name:?} of workflow {workflow_id:?} (no engine running type {:?} answered)",
                        run.workflow_type.as_str()
                    ),
                    after: deadline,
                });
            }
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), notified).await;
        }
    }
}
