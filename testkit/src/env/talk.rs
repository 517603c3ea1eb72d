//! Talking to runs in a `TestEnv`: queries and custom status, with the engine's semantics
//! (a query reads the run as its last step left it and records nothing; the status is what
//! the steps' effects stored).

use reprise_history::{
    EventKind, Payload, UpdateAccepted, UpdateId, UpdateName, UpdateOutcome, WorkflowId,
};
use reprise_sdk::{Execution, QueryDef, RunStatus, UpdateDef, UpdateRefusal};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TestEnv;
use crate::error::Error;

/// How an update ended.
#[derive(Clone, Debug)]
pub(super) enum UpdateEnd {
    /// Its handler returned.
    Finished(UpdateOutcome),
    /// Its step refused it.
    Refused(UpdateRefusal),
}

impl TestEnv {
    /// A workflow id's latest run.
    fn latest(&self, workflow_id: &str) -> Result<(WorkflowId, &super::Run), Error> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self
            .runs
            .get(&id)
            .ok_or_else(|| Error::UnknownWorkflow(workflow_id.to_string()))?;
        Ok((id, run))
    }

    /// Asks a workflow's latest run a query, as it stands (nothing runs first, nothing is
    /// recorded): from its live orchestrator, or, for a run that has none (terminated, or
    /// replaced), from its history replayed, as an engine that does not cache it would.
    pub fn query<I: Serialize, O: DeserializeOwned>(
        &self,
        workflow_id: &str,
        def: QueryDef<I, O>,
        input: &I,
    ) -> Result<O, Error> {
        let (_, run) = self.latest(workflow_id)?;
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
        let (_, run) = self.latest(workflow_id)?;
        run.custom_status
            .as_ref()
            .map(|status: &Payload| self.registry.converter().from_payload(status))
            .transpose()
            .map_err(Error::from)
    }

    /// Sends an update to a workflow's open run and runs everything that can run (jumping
    /// time as needed), then returns the handler's result, as the engine does. Each call is
    /// a new update; see [`TestEnv::update_with_id`].
    pub fn update<I: Serialize, O: DeserializeOwned>(
        &mut self,
        workflow_id: &str,
        def: UpdateDef<I, O>,
        input: &I,
    ) -> Result<O, Error> {
        // Drawn from the environment's generator: no id a test chooses looks like it.
        let update_id = format!("testenv-update-{}", self.new_run_id());
        self.update_with_id(workflow_id, &update_id, def, input)
    }

    /// [`TestEnv::update`] with the caller's id: an id sent before is not sent again, and
    /// its first outcome is returned.
    pub fn update_with_id<I: Serialize, O: DeserializeOwned>(
        &mut self,
        workflow_id: &str,
        update_id: &str,
        def: UpdateDef<I, O>,
        input: &I,
    ) -> Result<O, Error> {
        let (id, run) = self.latest(workflow_id)?;
        let run_id = run.run_id;
        let key = (run_id, update_id.to_string());
        if !self.updates.contains_key(&key) {
            if run.status != RunStatus::Running {
                return Err(Error::Closed(workflow_id.to_string()));
            }
            let update = UpdateAccepted {
                update_id: UpdateId::new(update_id)?,
                name: UpdateName::new(def.name())?,
                input: self.registry.converter().to_payload(input)?,
            };
            let now = self.now;
            self.push_input(&id, run_id, now, EventKind::UpdateAccepted(update));
            self.updates.insert(key.clone(), None);
        }
        self.run_until_idle()?;
        let update = def.name().to_string();
        match self.updates.get(&key).cloned().flatten() {
            Some(UpdateEnd::Finished(UpdateOutcome::Completed(result))) => {
                Ok(self.registry.converter().from_payload(&result)?)
            }
            Some(UpdateEnd::Finished(UpdateOutcome::Failed(failure))) => Err(Error::UpdateFailed {
                update,
                failure: Box::new(failure),
            }),
            Some(UpdateEnd::Refused(refusal)) => Err(Error::UpdateRejected(refusal)),
            None => Err(Error::UpdateNotFinished {
                workflow_id: workflow_id.to_string(),
                update,
            }),
        }
    }
}
