//! How the engine's and the worker's loops wait after a failure before trying again: one
//! doubling backoff, with the same bounds wherever a loop retries (a listener reconnecting,
//! a batch loop after a database error, the outcome recorder after a failed write), so that
//! a database that is down is not hammered and one that is back is used within seconds.

use std::time::Duration;

/// The first wait after a failure.
const FIRST: Duration = Duration::from_millis(100);
/// The longest wait between tries.
const LONGEST: Duration = Duration::from_secs(5);

/// A doubling wait between tries, from [`FIRST`] to [`LONGEST`]; a success resets it.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The wait before the next try, doubling the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(LONGEST);
        delay
    }

    /// Sleeps for the next delay.
    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// A try succeeded: the next failure waits the shortest time again.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_longest_and_reset_after_a_success() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), FIRST);
    }
}
