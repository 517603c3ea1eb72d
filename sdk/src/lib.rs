//! The authoring API and the deterministic replay executor of Reprise.
//!
//! Write orchestrators as plain `async fn(WorkflowContext, I) -> Result<O, WorkflowError>` and
//! activities as `async fn(ActivityContext, I) -> Result<O, ActivityError>`; name each once
//! in a `const` ([`WorkflowDef`], [`ActivityDef`], [`SignalDef`]) and register them in a
//! [`Registry`] value. The [`Execution`] runs an orchestrator against history: it never does
//! I/O, never reads a clock and never runs on an async runtime — everything it knows comes
//! from [`reprise_history`] events handed to it.
//!
//! ```
//! use reprise_sdk::{ActivityDef, Execution, Registry, WorkflowContext, WorkflowDef, WorkflowError};
//! use reprise_sdk::history::{HistoryBuilder, Limits, Payload};
//!
//! const GREET: ActivityDef<String, String> = ActivityDef::new("greet");
//! const HELLO: WorkflowDef<String, String> = WorkflowDef::new("hello");
//!
//! async fn hello(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
//!     Ok(ctx.activity(GREET, &name).await?)
//! }
//!
//! let registry = Registry::builder().workflow(HELLO, hello).build()?;
//! let input = Payload::encode(&"Ada".to_string(), &Limits::DEFAULT)?;
//! let started = HistoryBuilder::started("hello", "hello-1", input)?.events()[0].clone();
//! let (_execution, step) = Execution::start(&registry, started)?;
//! assert_eq!(step.decisions().next().map(|e| e.kind.name()), Some("ActivityScheduled"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What workflow code must not do
//!
//! A workflow is replayed against its history whenever it must be rebuilt, so it may depend
//! only on its input, on what [`WorkflowContext`] operations return, and on its own code: no
//! clocks (use [`WorkflowContext::now`]), no random numbers or ids
//! ([`WorkflowContext::random_u64`], [`WorkflowContext::uuid`]), no tokio timers or I/O
//! ([`WorkflowContext::sleep`], activities; tokio's drivers are off in workflow code: ND07),
//! no threads or channels fed from outside (ND05), no `HashMap` iteration deciding what to
//! do or with which input (use `BTreeMap`; a changed input is ND08, see [`InputChanges`]), no
//! environment or global state. The repository's `docs/determinism.md` has the whole list,
//! with the nondeterminism codes (ND01..ND08) each mistake is reported with;
//! `sdk/clippy.toml` has lints to copy.
//!
//! A saga with a human in the loop (the README's example, compiled here):
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)] struct Order { items: Vec<String>, payment: u64 }
//! # #[derive(Serialize, Deserialize)] struct Reservation(u64);
//! # #[derive(Serialize, Deserialize)] struct Receipt(String);
//! use std::time::Duration;
//! use futures::FutureExt;
//! use reprise_sdk::{ActivityDef, SignalDef, WorkflowContext, WorkflowError, select};
//!
//! const RESERVE: ActivityDef<Vec<String>, Reservation> = ActivityDef::new("reserve");
//! const CHARGE: ActivityDef<u64, Receipt> = ActivityDef::new("charge");
//! const RELEASE: ActivityDef<Reservation, ()> = ActivityDef::new("release");
//! const APPROVE: SignalDef<bool> = SignalDef::new("approve");
//!
//! async fn order(ctx: WorkflowContext, order: Order) -> Result<Receipt, WorkflowError> {
//!     let reservation = ctx.activity(RESERVE, &order.items).await?;
//!     let receipt = match ctx.activity(CHARGE, &order.payment).await {
//!         Ok(receipt) => receipt,
//!         Err(declined) => {
//!             ctx.activity(RELEASE, &reservation).await?; // compensate, then fail
//!             return Err(declined.into());
//!         }
//!     };
//!     select! {                                            // a person, or a week
//!         approved = ctx.signal(APPROVE).fuse() => if !approved? {
//!             return Err(WorkflowError::failed("Rejected", "the order was not approved"));
//!         },
//!         _ = ctx.sleep(Duration::from_secs(7 * 86_400)).fuse() => {}
//!     }
//!     Ok(receipt)
//! }
//! ```

mod activity;
mod context;
mod defs;
mod effects;
mod error;
mod executor;
mod fence;
mod inputs;
mod local;
mod nondeterminism;
mod ops;
mod query;
mod registry;
mod state;
mod status;
mod update;

pub use activity::{ActivityContext, ActivityInfo, CancellationSignal, HeartbeatSink};
pub use context::WorkflowContext;
pub use defs::{ActivityDef, QueryDef, SignalDef, UpdateDef, WorkflowDef};
pub use effects::{Close, Effects, NewChild, NewTask, NewTimer, NextRun, RunIdentity};
pub use error::{
    ActivityError, Cancelled, ContinueAsNew, Error, OperationEnd, OperationFailed, SignalError,
    UndecodablePayload, WorkflowError,
};
pub use executor::{Execution, RunStatus, Step};
pub use inputs::InputChanges;
pub use local::{AttemptEnd, LocalActivityOptions, LocalActivityRequest};
pub use nondeterminism::{Nondeterminism, NondeterminismKind, SourceLocation};
pub use ops::{
    ActivityCall, CancelWait, ChildCall, LocalActivityCall, SignalWait, Sleep, WaitUntil,
};
pub use query::{QueryError, WorkflowState};
pub use registry::{ActivityRunner, CachePolicy, Registry, RegistryBuilder};
pub use reprise_history as history;
pub use status::{MAX_STATUS_BYTES, StatusError};
pub use update::{UpdateRefusal, UpdateRejection};

/// Waits on several futures and runs the branch of the first to finish: `futures::select_biased!`,
/// which polls branches in the order written. Use it, not `futures::select!`, in workflows:
/// that one polls in random order, so when two branches are ready at once (a cancel request
/// ends every pending operation together) replay could take another branch.
pub use futures::select_biased as select;
