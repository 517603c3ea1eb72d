//! Before a deploy: would the new code strand running workflows? Samples open runs from the
//! database and replays each against the code of this binary — the same replay the engine does.

use std::fmt;

use reprise_history::{RunId, WorkflowId};
use reprise_sdk::{Execution, Registry};

use crate::error::Result;
use crate::store::Store;

/// An open run the checked code would not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WouldBreak {
    /// Its workflow id.
    pub workflow_id: WorkflowId,
    /// The run.
    pub run_id: RunId,
    /// Why: the nondeterminism (event, history, code, source line), or an unknown type.
    pub reason: String,
}

/// What a deploy check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployCheck {
    /// How many open runs were replayed.
    pub checked: usize,
    /// The ones the code would break.
    pub would_break: Vec<WouldBreak>,
}

impl DeployCheck {
    /// Whether the code can be deployed without stranding any sampled run.
    pub fn is_safe(&self) -> bool {
        self.would_break.is_empty()
    }
}

impl fmt::Display for DeployCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_safe() {
            return write!(
                f,
                "safe to deploy: all {} sampled open runs replay",
                self.checked
            );
        }
        writeln!(
            f,
            "NOT safe to deploy: {} of {} sampled open runs would break:",
            self.would_break.len(),
            self.checked
        )?;
        for b in &self.would_break {
            writeln!(f, "  {} (run {}): {}", b.workflow_id, b.run_id, b.reason)?;
        }
        Ok(())
    }
}

/// Replays up to `sample` open runs (chosen at random) against `registry`.
pub async fn check_deploy(store: &Store, registry: &Registry, sample: i64) -> Result<DeployCheck> {
    let runs = store.sample_open_runs(sample).await?;
    let mut check = DeployCheck {
        checked: 0,
        would_break: Vec::new(),
    };
    for run in runs {
        check.checked += 1;
        let reason = if !registry.has_workflow(&run.workflow_type) {
            Some(format!(
                "workflow type {:?} is not registered in this code",
                run.workflow_type.as_str()
            ))
        } else {
            let history = store.history(run.run_id).await?;
            Execution::replay(registry, &history)
                .err()
                .map(|e| e.to_string())
        };
        if let Some(reason) = reason {
            check.would_break.push(WouldBreak {
                workflow_id: run.workflow_id,
                run_id: run.run_id,
                reason,
            });
        }
    }
    Ok(check)
}
