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
    /// The ones the code replays, but giving some recorded decision another input (ND08): an
    /// engine reports these and goes on with the recorded input (or parks them, with
    /// `EngineOptions::input_changes` set to fail).
    pub changed_inputs: Vec<WouldBreak>,
}

impl DeployCheck {
    /// Whether the code can be deployed without stranding any sampled run.
    pub fn is_safe(&self) -> bool {
        self.would_break.is_empty()
    }

    /// Whether, moreover, no sampled run's code gives a recorded decision another input.
    pub fn is_safe_strict(&self) -> bool {
        self.is_safe() && self.changed_inputs.is_empty()
    }
}

impl fmt::Display for DeployCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_safe() {
            write!(
                f,
                "safe to deploy: all {} sampled open runs replay",
                self.checked
            )?;
        } else {
            writeln!(
                f,
                "NOT safe to deploy: {} of {} sampled open runs would break:",
                self.would_break.len(),
                self.checked
            )?;
            for b in &self.would_break {
                writeln!(f, "  {} (run {}): {}", b.workflow_id, b.run_id, b.reason)?;
            }
        }
        if !self.changed_inputs.is_empty() {
            if self.is_safe() {
                writeln!(f)?;
            }
            writeln!(
                f,
                "{} sampled open runs replay with changed inputs (the recorded ones are kept; \
                 intended in a new version?):",
                self.changed_inputs.len()
            )?;
            for b in &self.changed_inputs {
                writeln!(f, "  {} (run {}): {}", b.workflow_id, b.run_id, b.reason)?;
            }
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
        changed_inputs: Vec::new(),
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
            match Execution::replay(registry, &history) {
                Err(e) => Some(e.to_string()),
                Ok(mut execution) => {
                    let changes = execution.take_input_changes();
                    if !changes.is_empty() {
                        let reasons: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
                        check.changed_inputs.push(WouldBreak {
                            workflow_id: run.workflow_id.clone(),
                            run_id: run.run_id,
                            reason: reasons.join("; "),
                        });
                    }
                    None
                }
            }
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
