//! Local activities in `TestEnv`: run while the step that scheduled them is taken, as the
//! engine runs them inside its step, with the sdk's attempt rules
//! (`LocalActivityRequest::run`, shared, not copied). Retries inside the in-step window wait
//! on a clock of the step's own, so a schedule-to-close deadline can pass inside a step while
//! the environment's time stands still; a longer wait is a durable timer in virtual time.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use reprise_history::*;
use reprise_sdk::{AttemptEnd, Execution, LocalActivityRequest};

use super::TestEnv;
use crate::error::Error;

impl TestEnv {
    /// Runs the local activities `execution` waits on, delivering each outcome and running
    /// those its code schedules next, until none waits; appends what each outcome leads to.
    /// With an order seed, the waiting ones run in a random order.
    pub(super) fn run_local_activities(
        &mut self,
        execution: &mut Execution,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        loop {
            let mut requests = execution.take_local_activities();
            if requests.is_empty() {
                return Ok(());
            }
            if self.shuffle {
                for i in (1..requests.len()).rev() {
                    let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
                    requests.swap(i, j);
                }
            }
            for request in requests {
                let outcome = self.run_local(&request)?;
                if let Some(step) = execution.resolve_local_activity(self.now, outcome)? {
                    events.extend(step.events);
                }
            }
        }
    }

    /// One local activity's attempts, to the outcome its step records.
    fn run_local(&mut self, request: &LocalActivityRequest) -> Result<EventKind, Error> {
        self.can_run(&request.activity_type)?;
        let clock = Cell::new(self.now);
        let mut jitter = ChaCha8Rng::seed_from_u64(self.rng.next_u64());
        let mut failed = None;
        // Every future in the loop is ready at once (attempts run synchronously, waits are
        // virtual), so one poll finishes it; not `block_on`, which registry code under it
        // (an async activity, run by `block_on` itself) could not nest in.
        let outcome = request.run(
            |attempt, _timeout| {
                // Local activities do not heartbeat: their details go nowhere.
                let end = match catch_unwind(AssertUnwindSafe(|| {
                    self.invoke(request.info(attempt), &request.input, None)
                })) {
                    Ok(Ok((Ok(result), _))) => AttemptEnd::Completed(result),
                    Ok(Ok((Err(error), _))) => AttemptEnd::Failed(error.into_failure()),
                    Ok(Err(e)) => {
                        failed = Some(e);
                        AttemptEnd::Failed(Failure::application("TestEnv", "the attempt failed"))
                    }
                    Err(panic) => AttemptEnd::panicked(panic.as_ref()),
                };
                std::future::ready(end)
            },
            || clock.get(),
            |wait| {
                clock.set(clock.get().saturating_add(wait));
                std::future::ready(())
            },
            || (jitter.next_u64() >> 11) as f64 / (1u64 << 53) as f64,
        );
        let outcome = futures::FutureExt::now_or_never(outcome);
        match (failed, outcome) {
            (Some(e), _) => Err(e),
            (None, Some(outcome)) => Ok(outcome),
            (None, None) => Err(Error::Sdk(reprise_sdk::Error::BadHistory {
                reason: "a local activity's attempts did not finish at once".to_string(),
            })),
        }
    }
}
