//! `ActivityContext`: what an activity attempt knows and can do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use reprise_history::{ActivityType, DataConverter, Payload, RunId, Seq, WorkflowId};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where an activity attempt comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityInfo {
    /// The workflow that scheduled it.
    pub workflow_id: WorkflowId,
    /// The run that scheduled it.
    pub run_id: RunId,
    /// The seq of its `ActivityScheduled` event.
    pub scheduled_seq: Seq,
    /// Its type.
    pub activity_type: ActivityType,
    /// This attempt, from 1.
    pub attempt: u32,
}

/// Receives heartbeats (with progress details) from running activities; the engine and the
/// testkit implement it.
pub trait HeartbeatSink: Send + Sync {
    /// Records that the attempt is alive, with its latest progress details.
    fn heartbeat(&self, info: &ActivityInfo, details: Payload);
}

/// A flag that the worker raises to ask a running activity to stop.
#[derive(Clone, Default)]
pub struct CancellationSignal {
    inner: Arc<CancellationInner>,
}

#[derive(Default)]
struct CancellationInner {
    cancelled: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl CancellationSignal {
    /// A signal that is not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises it: `is_cancelled` turns true and `cancelled()` futures resolve.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(
            &mut *self
                .inner
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether it is raised.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once it is raised.
    pub async fn cancelled(&self) {
        std::future::poll_fn(|cx| {
            if self.is_cancelled() {
                return Poll::Ready(());
            }
            self.inner
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(cx.waker().clone());
            // Raised between the check and the registration: do not miss it.
            if self.is_cancelled() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// The handle an activity attempt gets.
#[derive(Clone)]
pub struct ActivityContext {
    info: Arc<ActivityInfo>,
    heartbeats: Arc<dyn HeartbeatSink>,
    cancellation: CancellationSignal,
    converter: DataConverter,
    /// The details of the last heartbeat an earlier attempt recorded.
    last_details: Option<Payload>,
}

impl ActivityContext {
    /// Built by whoever runs the attempt (the engine's worker, the testkit).
    pub fn new(
        info: ActivityInfo,
        heartbeats: Arc<dyn HeartbeatSink>,
        cancellation: CancellationSignal,
        converter: DataConverter,
    ) -> Self {
        ActivityContext {
            info: Arc::new(info),
            heartbeats,
            cancellation,
            converter,
            last_details: None,
        }
    }

    /// Gives the attempt the details of the last heartbeat an earlier attempt recorded (the
    /// worker and the testkit do, for attempts after the first).
    pub fn with_last_details(mut self, details: Option<Payload>) -> Self {
        self.last_details = details;
        self
    }

    /// Where this attempt comes from.
    pub fn info(&self) -> &ActivityInfo {
        &self.info
    }

    /// This attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.info.attempt
    }

    /// A key that is the same for every attempt of this activity and unique across all
    /// activities: pass it to the systems you call so they apply a side effect once.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.info.run_id, self.info.scheduled_seq)
    }

    /// Reports that the attempt is alive, with progress details a retry can resume from.
    pub fn heartbeat<T: Serialize>(&self, details: &T) -> Result<(), reprise_history::Error> {
        let payload = self.converter.to_payload(details)?;
        self.heartbeats.heartbeat(&self.info, payload);
        Ok(())
    }

    /// The details of the last heartbeat an earlier attempt of this activity recorded: its
    /// checkpoint, for this attempt to resume from instead of starting over. `None` on the
    /// first attempt and when no attempt heartbeat; an error if they do not decode as `T`.
    pub fn last_details<T: DeserializeOwned>(&self) -> Result<Option<T>, reprise_history::Error> {
        self.last_details
            .as_ref()
            .map(|details| self.converter.from_payload(details))
            .transpose()
    }

    /// Whether the activity has been asked to stop: the workflow no longer wants it, its
    /// lease was lost, or its start-to-close timeout ran out. What it returns after the last
    /// two is refused, so it should return at once.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation.is_cancelled()
    }

    /// Resolves when the activity is asked to stop (see [`ActivityContext::is_cancelled`]).
    pub async fn cancelled(&self) {
        self.cancellation.cancelled().await
    }
}
