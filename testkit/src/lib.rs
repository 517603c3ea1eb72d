//! Testing tools for Reprise users, with no database.
//!
//! - [`Replayer`]: replay histories recorded in production (files, folders, in memory) against
//!   the current code, in an ordinary `cargo test`; every history that no longer replays is
//!   reported with the event, what history holds, what the code did and the source line.
//! - [`TestEnv`]: run workflows in process, with stand-in activities and a virtual clock that
//!   jumps ahead whenever everything waits on time.
//! - [`check_determinism`] and [`strategies`]: run a workflow under many completion orders and
//!   replay each history.
//!
//! ```
//! use reprise_sdk::{ActivityDef, Registry, WorkflowContext, WorkflowDef, WorkflowError};
//! use reprise_testkit::TestEnv;
//! use std::time::Duration;
//!
//! const REMIND: ActivityDef<String, ()> = ActivityDef::new("remind");
//! const TRIAL: WorkflowDef<String, String> = WorkflowDef::new("trial");
//!
//! async fn trial(ctx: WorkflowContext, user: String) -> Result<String, WorkflowError> {
//!     ctx.sleep(Duration::from_secs(30 * 86_400)).await?; // thirty days
//!     ctx.activity(REMIND, &user).await?;
//!     Ok(format!("reminded {user}"))
//! }
//!
//! let registry = Registry::builder().workflow(TRIAL, trial).build()?;
//! let mut env = TestEnv::new(registry);
//! let remind = env.stand_in(REMIND, |_user: String, _attempt| Ok(()))?;
//! let run = env.start(TRIAL, "trial-ada", &"ada".to_string())?;
//! assert_eq!(env.result(&run)?, "reminded ada");
//! assert_eq!(remind.count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate depends on `reprise-sdk` and `reprise-history` only: replaying needs no database.

mod determinism;
mod env;
mod error;
mod replayer;
pub mod strategies;

pub use determinism::check_determinism;
pub use env::{StandIn, TestEnv, TestRun, TestStartOptions};
pub use error::Error;
pub use replayer::{Failure, ReplayFailures, ReplayProblem, ReplayReport, Replayer};
pub use reprise_history as history;
pub use reprise_schedule as schedule;
pub use reprise_sdk as sdk;
