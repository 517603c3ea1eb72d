//! The registry: which code runs which workflow and activity type. A value, built once and
//! passed in; no global registration.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use reprise_history::{
    ActivityType, DataConverter, Failure, Limits, Payload, PayloadCodec, WorkflowType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::activity::ActivityContext;
use crate::context::WorkflowContext;
use crate::defs::{ActivityDef, WorkflowDef};
use crate::error::{ActivityError, Error, WorkflowError};

pub(crate) type WorkflowFn = Arc<
    dyn Fn(WorkflowContext, Payload) -> BoxFuture<'static, Result<Payload, WorkflowError>>
        + Send
        + Sync,
>;

type AsyncActivityFn = Arc<
    dyn Fn(ActivityContext, Payload) -> BoxFuture<'static, Result<Payload, ActivityError>>
        + Send
        + Sync,
>;
type BlockingActivityFn =
    Arc<dyn Fn(ActivityContext, Payload) -> Result<Payload, ActivityError> + Send + Sync>;

/// How an activity's code runs.
#[derive(Clone)]
pub enum ActivityRunner {
    /// An async fn, polled on the worker's runtime.
    Async(AsyncActivityFn),
    /// A blocking fn, run on a thread pool so it cannot stall the runtime.
    Blocking(BlockingActivityFn),
}

/// Workflow and activity code by type name.
#[derive(Clone)]
pub struct Registry {
    workflows: BTreeMap<WorkflowType, WorkflowFn>,
    activities: BTreeMap<ActivityType, ActivityRunner>,
    caches: BTreeMap<ActivityType, CachePolicy>,
    converter: DataConverter,
}

/// Builds a [`Registry`]; mistakes are reported by [`RegistryBuilder::build`].
#[derive(Default)]
pub struct RegistryBuilder {
    workflows: BTreeMap<WorkflowType, WorkflowFn>,
    activities: BTreeMap<ActivityType, ActivityRunner>,
    caches: BTreeMap<ActivityType, CachePolicy>,
    converter: DataConverter,
    errors: Vec<Error>,
}

/// How a worker reuses an activity's results ([`RegistryBuilder::cache`]): a completed
/// attempt's result is kept under the activity type, this version and the input, and an
/// attempt with the same input within `ttl` takes it instead of running the code. For
/// expensive, deterministic work (a model's answer, a rendered asset, a report's query)
/// shared by many runs; never for side effects, which must happen on every call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachePolicy {
    /// Part of the key: change it when the code's results change, and earlier results are
    /// not reused.
    pub version: String,
    /// How long a result is reused after it was computed.
    pub ttl: std::time::Duration,
}

impl CachePolicy {
    /// Results of code `version`, reused for `ttl`.
    pub fn new(version: impl Into<String>, ttl: std::time::Duration) -> CachePolicy {
        CachePolicy {
            version: version.into(),
            ttl,
        }
    }
}

/// The longest cache version.
const MAX_CACHE_VERSION_BYTES: usize = 100;

/// The longest time to live: about 100 years (PostgreSQL's intervals end far beyond, but not
/// at `Duration::MAX`). For "for ever", this.
const MAX_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

fn failure_from(error: &reprise_history::Error, error_type: &str) -> Failure {
    Failure::application(error_type, error.to_string())
        .retryable(false)
        .with_sources(error)
}

/// An activity's input that does not decode: retryable, since a worker with the type's new
/// code, or with the codec's key, can run it; the attempt count shows the trouble meanwhile.
fn undecodable_input<I>(error: &reprise_history::Error) -> ActivityError {
    ActivityError::from_failure(
        Failure::application(
            "UndecodablePayload",
            format!(
                "activity input does not decode as {}: {error}",
                std::any::type_name::<I>()
            ),
        )
        .with_sources(error),
    )
}

impl RegistryBuilder {
    /// Registers a workflow: `async fn(WorkflowContext, I) -> Result<O, WorkflowError>`.
    pub fn workflow<I, O, F, Fut>(mut self, def: WorkflowDef<I, O>, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + Send + 'static,
    {
        let name = match WorkflowType::new(def.name()) {
            Ok(name) => name,
            Err(e) => {
                self.errors.push(e.into());
                return self;
            }
        };
        if self.workflows.contains_key(&name) {
            self.errors.push(Error::DuplicateRegistration {
                kind: "workflow",
                name: name.to_string(),
            });
            return self;
        }
        let converter = self.converter.clone();
        let f = Arc::new(f);
        let run: WorkflowFn = Arc::new(move |ctx, input: Payload| {
            let f = f.clone();
            let converter = converter.clone();
            async move {
                let Some(input) = ctx.decode_input::<I>(&input) else {
                    // The step fails with the decode error; the run waits for fixed code.
                    return std::future::pending().await;
                };
                let output = f(ctx, input).await.map_err(|e| match e {
                    WorkflowError::Failed(failure) => {
                        WorkflowError::Failed(converter.sealed_failure(failure))
                    }
                    WorkflowError::Cancelled { details } => WorkflowError::Cancelled {
                        details: details.and_then(|d| converter.sealed(d).ok()),
                    },
                    other => other,
                })?;
                converter
                    .to_payload(&output)
                    .map_err(|e| WorkflowError::Failed(failure_from(&e, "OutputEncode")))
            }
            .boxed()
        });
        self.workflows.insert(name, run);
        self
    }

    /// Registers an activity: `async fn(ActivityContext, I) -> Result<O, ActivityError>`.
    pub fn activity<I, O, F, Fut>(self, def: ActivityDef<I, O>, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        let converter = self.converter.clone();
        let f = Arc::new(f);
        let run: AsyncActivityFn = Arc::new(move |ctx, input: Payload| {
            let f = f.clone();
            let converter = converter.clone();
            async move {
                let input = converter
                    .from_payload::<I>(&input)
                    .map_err(|e| undecodable_input::<I>(&e))?;
                let output = f(ctx, input).await.map_err(|e| {
                    ActivityError::from_failure(converter.sealed_failure(e.into_failure()))
                })?;
                converter
                    .to_payload(&output)
                    .map_err(|e| ActivityError::from_failure(failure_from(&e, "OutputEncode")))
            }
            .boxed()
        });
        self.add_activity(def.name(), ActivityRunner::Async(run))
    }

    /// Registers a blocking activity: `fn(ActivityContext, I) -> Result<O, ActivityError>`,
    /// run on a thread pool.
    pub fn blocking_activity<I, O, F>(self, def: ActivityDef<I, O>, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(ActivityContext, I) -> Result<O, ActivityError> + Send + Sync + 'static,
    {
        let converter = self.converter.clone();
        let run: BlockingActivityFn = Arc::new(move |ctx, input: Payload| {
            let input = converter
                .from_payload::<I>(&input)
                .map_err(|e| undecodable_input::<I>(&e))?;
            let output = f(ctx, input).map_err(|e| {
                ActivityError::from_failure(converter.sealed_failure(e.into_failure()))
            })?;
            converter
                .to_payload(&output)
                .map_err(|e| ActivityError::from_failure(failure_from(&e, "OutputEncode")))
        });
        self.add_activity(def.name(), ActivityRunner::Blocking(run))
    }

    fn add_activity(mut self, name: &str, runner: ActivityRunner) -> Self {
        match ActivityType::new(name) {
            Err(e) => self.errors.push(e.into()),
            Ok(name) if self.activities.contains_key(&name) => {
                self.errors.push(Error::DuplicateRegistration {
                    kind: "activity",
                    name: name.to_string(),
                })
            }
            Ok(name) => {
                self.activities.insert(name, runner);
            }
        }
        self
    }

    /// Caches the results of the activity `def` (registered before or after) by
    /// [`CachePolicy`]: its workers reuse a result computed for the same input, by any run,
    /// within the policy's time to live. History records the result as usual, so replay does
    /// not depend on the cache. `TestEnv` runs every attempt.
    pub fn cache<I, O>(mut self, def: ActivityDef<I, O>, policy: CachePolicy) -> Self {
        let invalid = |reason: &str| Error::InvalidCachePolicy {
            activity: def.name().to_string(),
            reason: reason.to_string(),
        };
        if policy.version.is_empty() || policy.version.len() > MAX_CACHE_VERSION_BYTES {
            self.errors.push(invalid(&format!(
                "its version must be 1 to {MAX_CACHE_VERSION_BYTES} bytes"
            )));
            return self;
        }
        if policy.ttl.is_zero() || policy.ttl > MAX_CACHE_TTL {
            self.errors.push(invalid(
                "its time to live must be above zero and at most 100 years",
            ));
            return self;
        }
        match ActivityType::new(def.name()) {
            Err(e) => self.errors.push(e.into()),
            Ok(name) => {
                self.caches.insert(name, policy);
            }
        }
        self
    }

    /// Size limits for payloads (set before registering).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.converter = self.converter.with_limits(limits);
        self
    }

    /// Adds a payload codec (compression, encryption) to the end of the chain (set before
    /// registering). Every process that reads these payloads needs the same codecs: the
    /// engine and worker take them from this registry; give the client the same converter.
    pub fn codec(mut self, codec: impl PayloadCodec) -> Self {
        match self.converter.clone().with_codec(codec) {
            Ok(converter) => self.converter = converter,
            Err(e) => self.errors.push(e.into()),
        }
        self
    }

    /// Replaces the whole data converter: limits and codecs (set before registering).
    pub fn converter(mut self, converter: DataConverter) -> Self {
        self.converter = converter;
        self
    }

    /// The registry, or the first registration mistake.
    pub fn build(mut self) -> Result<Registry, Error> {
        if !self.errors.is_empty() {
            return Err(self.errors.remove(0));
        }
        if let Some(name) = self
            .caches
            .keys()
            .find(|n| !self.activities.contains_key(*n))
        {
            return Err(Error::UnknownActivityType {
                name: name.to_string(),
                known: join(self.activities.keys()),
            });
        }
        Ok(Registry {
            workflows: self.workflows,
            activities: self.activities,
            caches: self.caches,
            converter: self.converter,
        })
    }
}

impl Registry {
    /// Starts building a registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// The payload limits workflows and activities encode with.
    pub fn limits(&self) -> Limits {
        *self.converter.limits()
    }

    /// How workflows and activities encode and decode payloads: JSON, limits, codecs.
    pub fn converter(&self) -> &DataConverter {
        &self.converter
    }

    /// Whether this registry can run the workflow type.
    pub fn has_workflow(&self, workflow_type: &WorkflowType) -> bool {
        self.workflows.contains_key(workflow_type)
    }

    /// The registered workflow types.
    pub fn workflow_types(&self) -> impl Iterator<Item = &WorkflowType> {
        self.workflows.keys()
    }

    /// The registered activity types.
    pub fn activity_types(&self) -> impl Iterator<Item = &ActivityType> {
        self.activities.keys()
    }

    pub(crate) fn workflow(&self, workflow_type: &WorkflowType) -> Result<WorkflowFn, Error> {
        self.workflows
            .get(workflow_type)
            .cloned()
            .ok_or_else(|| Error::UnknownWorkflowType {
                name: workflow_type.to_string(),
                known: join(self.workflows.keys()),
            })
    }

    /// How the results of an activity type are cached, if they are.
    pub fn cache_policy(&self, activity_type: &ActivityType) -> Option<&CachePolicy> {
        self.caches.get(activity_type)
    }

    /// The code of an activity type.
    pub fn activity(&self, activity_type: &ActivityType) -> Result<ActivityRunner, Error> {
        self.activities
            .get(activity_type)
            .cloned()
            .ok_or_else(|| Error::UnknownActivityType {
                name: activity_type.to_string(),
                known: join(self.activities.keys()),
            })
    }
}

fn join<'a, T: std::fmt::Display + 'a>(names: impl Iterator<Item = &'a T>) -> String {
    let names: Vec<String> = names.map(ToString::to_string).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
