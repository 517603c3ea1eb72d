//! Operations for tools that know no Rust types (the CLI, the UI): inputs, signals and results
//! as JSON, through the client's codecs.

use reprise_history::{Payload, RunId, WorkflowId};

use crate::client::{Client, StartOptions, WorkflowHandle};
use crate::error::Result;

impl Client {
    /// Starts a workflow of a type given by name with JSON input (checked to be JSON, then
    /// encoded with the client's codecs); idempotent like [`Client::start`]. Nothing is stored
    /// if the text is not JSON.
    pub async fn start_json(
        &self,
        workflow_type: &str,
        workflow_id: &str,
        input_json: &str,
        options: StartOptions,
    ) -> Result<WorkflowHandle<serde_json::Value>> {
        let input = self.json_payload(input_json)?;
        self.start_payload(workflow_type, workflow_id, input, options, None)
            .await
    }

    /// Sends a signal given by name with a JSON payload.
    pub async fn signal_json(
        &self,
        workflow_id: &str,
        name: &str,
        payload_json: &str,
    ) -> Result<()> {
        let payload = self.json_payload(payload_json)?;
        self.signal_payload(workflow_id, name, payload).await
    }

    /// Asks a query given by name with JSON input; the answer comes back as stored (decode it
    /// with the client's converter). See [`Client::query`].
    pub async fn query_json(
        &self,
        workflow_id: &str,
        name: &str,
        input_json: &str,
        deadline: std::time::Duration,
    ) -> Result<Payload> {
        let input = self.json_payload(input_json)?;
        self.query_payload(workflow_id, name, &input, deadline)
            .await
    }

    /// Sends an update given by name with JSON input, and an id (the same id runs once);
    /// the result comes back as stored (decode it with the client's converter). See
    /// [`Client::update`].
    pub async fn update_json(
        &self,
        workflow_id: &str,
        update_id: &str,
        name: &str,
        input_json: &str,
    ) -> Result<Payload> {
        let input = self.json_payload(input_json)?;
        self.update_payload(workflow_id, update_id, name, input)
            .await
    }

    /// A handle on the latest run of a workflow id whose result is read as JSON.
    pub async fn handle_json(
        &self,
        workflow_id: &str,
    ) -> Result<WorkflowHandle<serde_json::Value>> {
        let workflow_id = WorkflowId::new(workflow_id)?;
        let run = self.latest_run(&workflow_id).await?;
        Ok(self.handle_of(workflow_id, run.run_id))
    }

    pub(crate) fn handle_of<O>(&self, workflow_id: WorkflowId, run_id: RunId) -> WorkflowHandle<O> {
        WorkflowHandle {
            client: self.clone(),
            workflow_id,
            run_id,
            output: std::marker::PhantomData,
        }
    }

    /// JSON text as a payload: checked to be JSON (nothing is sent otherwise), then encoded
    /// with the client's codecs.
    pub(super) fn json_payload(&self, json: &str) -> Result<Payload> {
        let plain = Payload::from_json_str(json, self.converter.limits())?;
        Ok(self.converter.encoded(plain)?)
    }
}
