//! The fence workflow code is polled behind: a Tokio runtime context whose timer and I/O
//! drivers are off.
//!
//! A tokio timer or socket in workflow code would wake the workflow from outside Reprise,
//! later, where no replay can reproduce it (issue 18: a `tokio::time::timeout` around
//! `ctx.signal(..)` left its run silently running forever). Polled inside this context, the
//! timer or socket fails as it is created, in the step that creates it, with tokio's panic;
//! the executor turns that panic into nondeterminism ND07 naming what was used, the same in
//! the engine, in `TestEnv` under `#[tokio::test]`, and under a plain `#[test]` (where tokio
//! would otherwise say only "there is no reactor running").
//!
//! Entering a runtime's context is a thread-local swap, so the fence costs a poll almost
//! nothing; this runtime is never run and spawns no thread. A task workflow code spawns onto
//! it never runs: awaiting it is waiting on a future Reprise does not drive (ND06).

use std::sync::OnceLock;

use tokio::runtime::{Builder, EnterGuard, Runtime};

/// The runtime whose context fences workflow code; `None` if it could not be built (then
/// code is polled unfenced, as before the fence existed).
fn fence() -> Option<&'static Runtime> {
    static FENCE: OnceLock<Option<Runtime>> = OnceLock::new();
    FENCE
        .get_or_init(|| Builder::new_current_thread().build().ok())
        .as_ref()
}

/// Enters the fence until the guard drops.
pub(crate) fn enter() -> Option<EnterGuard<'static>> {
    fence().map(|runtime| runtime.handle().enter())
}

/// What a panic of workflow code says was used of tokio's drivers, if it is tokio refusing a
/// driver the fence turned off.
pub(crate) fn driver_refused(panic_message: &str) -> Option<&'static str> {
    if panic_message.contains("timers are disabled") {
        Some("timer")
    } else if panic_message.contains("IO is disabled") {
        Some("I/O")
    } else if panic_message.contains("there is no reactor running") {
        Some("runtime")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // The point of the test.
    fn a_timer_created_behind_the_fence_is_refused_at_once() {
        let _fenced = enter();
        let refused = std::panic::catch_unwind(|| {
            drop(tokio::time::sleep(std::time::Duration::from_millis(1)));
        })
        .unwrap_err();
        let message = refused
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| refused.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert_eq!(driver_refused(&message), Some("timer"), "{message}");
    }

    #[test]
    fn other_panics_are_not_refusals() {
        assert_eq!(driver_refused("index out of bounds"), None);
    }
}
