//! Talking to runs in a `TestEnv`: queries and custom status, with the engine's semantics
//! (a query reads the run as its last step left it and records nothing; the status is what
//! the steps' effects stored).

use reprise_history::{Payload, WorkflowId};
use reprise_sdk::{Execution, QueryDef};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TestEnv;
use crate::error::Error;

impl TestEnv {
    /// Asks a workflow's latest run a query, as it stands (nothing runs first, nothing is
    /// recorded): from its live orchestrator, or, for a run that has none (terminated, or
    /// replaced), from its history replayed, as an engine that does not cache it would.
    pub fn query<I: Serialize, O: DeserializeOwned>(
        &self,
        workflow_id: &str,
        def: QueryDef<I, O>,
        input: &I,
    ) -> Result<O, Error> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self
            .runs
            .get(&id)
            .ok_or_else(|| Error::UnknownWorkflow(workflow_id.to_string()))?;
        let converter = self.registry.converter();
        let input = converter.to_payload(input)?;
        let answer = match &run.execution {
            Some(execution) => execution.query(def.name(), &input),
            None => Execution::replay(&self.registry, &run.history)?.query(def.name(), &input),
        }?;
        Ok(converter.from_payload(&answer)?)
    }

    /// The custom status a workflow's latest run last set (`ctx.set_status`), decoded;
    /// `None` if it never set one.
    pub fn custom_status<T: DeserializeOwned>(
        &self,
        workflow_id: &str,
    ) -> Result<Option<T>, Error> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self
            .runs
            .get(&id)
            .ok_or_else(|| Error::UnknownWorkflow(workflow_id.to_string()))?;
        run.custom_status
            .as_ref()
            .map(|status: &Payload| self.registry.converter().from_payload(status))
            .transpose()
            .map_err(Error::from)
    }
}
