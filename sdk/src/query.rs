//! Queries: a running (or closed) workflow's state read from outside, recording nothing.
//!
//! A query handler is a plain `fn(&S, I) -> O` over a [`WorkflowState`] the workflow shares
//! with it. A function pointer captures nothing and gets the state only by shared reference,
//! so a handler cannot change what the workflow decides: a query answered from the engine's
//! cache and the same query answered by replaying history read the same state.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use reprise_history::{DataConverter, Payload};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// State a workflow keeps for its queries: the workflow reads and changes it, query handlers
/// read it. Cheap to clone (clones share the value).
pub struct WorkflowState<S>(Arc<Mutex<S>>);

impl<S> WorkflowState<S> {
    /// State holding `value`.
    pub fn new(value: S) -> WorkflowState<S> {
        WorkflowState(Arc::new(Mutex::new(value)))
    }

    /// Reads the state.
    pub fn read<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        read(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the state (only the workflow does: handlers get `&S`). Waits on conditions
    /// (`WorkflowContext::wait_until`) look again after a change an update's handler makes.
    pub fn update<R>(&self, change: impl FnOnce(&mut S) -> R) -> R {
        let result = change(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
        CHANGED.with(|changed| changed.set(true));
        result
    }

    /// A copy of the state.
    pub fn get(&self) -> S
    where
        S: Clone,
    {
        self.read(S::clone)
    }
}

impl<S> Clone for WorkflowState<S> {
    fn clone(&self) -> Self {
        WorkflowState(self.0.clone())
    }
}

impl<S: Default> Default for WorkflowState<S> {
    fn default() -> Self {
        WorkflowState::new(S::default())
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for WorkflowState<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.read(|s| f.debug_tuple("WorkflowState").field(s).finish())
    }
}

thread_local! {
    /// Whether a `WorkflowState` changed since the executor last looked: the executor polls
    /// workflow code on its own thread, so a change made while it polls is seen here.
    static CHANGED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether any `WorkflowState` changed on this thread since the last call.
pub(crate) fn take_changed() -> bool {
    CHANGED.with(|changed| changed.replace(false))
}

/// Why a query got no answer from the workflow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The workflow has registered no handler of this name (yet, or in this run).
    #[error("the workflow answers no query {name:?} (it answers: {})", list_names(.registered))]
    UnknownQuery {
        /// The name asked for.
        name: String,
        /// The names it registers, sorted.
        registered: Vec<String>,
    },
    /// The query's input does not decode as the handler's input type.
    #[error("the input of query {name:?} does not decode: {message}")]
    UndecodableInput {
        /// The query.
        name: String,
        /// serde's or the codec's message.
        message: String,
    },
    /// The handler's answer does not encode (over the payload limit, say).
    #[error("the answer to query {name:?} does not encode: {message}")]
    UnencodableAnswer {
        /// The query.
        name: String,
        /// Why.
        message: String,
    },
    /// The handler panicked; the run is not disturbed.
    #[error("the handler of query {name:?} panicked: {message}")]
    Panicked {
        /// The query.
        name: String,
        /// The panic message.
        message: String,
    },
}

/// Registered names for a message: comma-separated, or "none".
pub(crate) fn list_names(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A handler with its types erased: input payload in, answer payload out.
type Handler = Arc<dyn Fn(&DataConverter, &Payload) -> Result<Payload, QueryError> + Send + Sync>;

/// The query handlers a run has registered, by name (a later registration replaces one).
#[derive(Clone, Default)]
pub(crate) struct QueryHandlers(BTreeMap<String, Handler>);

impl QueryHandlers {
    pub(crate) fn register<S, I, O>(
        &mut self,
        name: &'static str,
        state: &WorkflowState<S>,
        handler: fn(&S, I) -> O,
    ) where
        S: Send + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
    {
        let state = state.clone();
        let erased: Handler = Arc::new(move |converter, input| {
            let input: I =
                converter
                    .from_payload(input)
                    .map_err(|e| QueryError::UndecodableInput {
                        name: name.to_string(),
                        message: e.to_string(),
                    })?;
            let answer = state.read(|s| handler(s, input));
            converter
                .to_payload(&answer)
                .map_err(|e| QueryError::UnencodableAnswer {
                    name: name.to_string(),
                    message: e.to_string(),
                })
        });
        self.0.insert(name.to_string(), erased);
    }

    /// The handler of `name`, to call outside the run's lock.
    pub(crate) fn find(&self, name: &str) -> Result<Handler, QueryError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| QueryError::UnknownQuery {
                name: name.to_string(),
                registered: self.0.keys().cloned().collect(),
            })
    }
}

/// Calls a handler; a panic in it is an answer ([`QueryError::Panicked`]), not a crash.
pub(crate) fn answer(
    handler: &Handler,
    name: &str,
    converter: &DataConverter,
    input: &Payload,
) -> Result<Payload, QueryError> {
    match catch_unwind(AssertUnwindSafe(|| handler(converter, input))) {
        Ok(answer) => answer,
        Err(panic) => Err(QueryError::Panicked {
            name: name.to_string(),
            message: crate::executor::panic_message(panic.as_ref()),
        }),
    }
}
