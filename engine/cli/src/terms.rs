//! The deadlines and retry policy of the workflows a command starts, as flags: `reprise
//! start` and `reprise schedule create/update` share them.

use std::time::Duration;

use clap::Args;
use reprise_engine::StartOptions;
use reprise_history::RetryPolicy;

/// `--run-timeout`, `--execution-timeout`, `--retry-attempts`, `--retry-backoff`.
#[derive(Args)]
pub(crate) struct RunTerms {
    /// Close a run still open this long after its first step (`30m`), as timed out.
    #[arg(long, value_parser = humantime::parse_duration)]
    run_timeout: Option<Duration>,
    /// Close the workflow still open this long after its first step (`7d`), across
    /// continue-as-new and retries, as timed out.
    #[arg(long, value_parser = humantime::parse_duration)]
    execution_timeout: Option<Duration>,
    /// Retry a failed run (or one past its run timeout) as a new run, up to this many
    /// attempts in all.
    #[arg(long)]
    retry_attempts: Option<u32>,
    /// The wait before the first retry, doubling each time (at most 100 times it).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s", requires = "retry_attempts")]
    retry_backoff: Duration,
}

impl RunTerms {
    /// `options` with these deadlines and retry policy.
    pub(crate) fn apply(self, options: StartOptions) -> StartOptions {
        StartOptions {
            run_timeout: self.run_timeout,
            execution_timeout: self.execution_timeout,
            retry: self.retry_attempts.map(|attempts| RetryPolicy {
                max_attempts: Some(attempts),
                initial_backoff: self.retry_backoff,
                max_backoff: self.retry_backoff.saturating_mul(100),
                ..RetryPolicy::default()
            }),
            ..options
        }
    }
}
