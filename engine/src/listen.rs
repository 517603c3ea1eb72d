//! Wake-ups from `LISTEN/NOTIFY`, with a bounded poll as the fallback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reprise_history::RunId;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::store::Store;

/// What a listener heard.
enum Heard<'a> {
    /// A notification, with its payload.
    Notification(&'a str),
    /// The listening connection was (re)opened: anything may have happened while it was not
    /// listening.
    Listening,
}

/// Listens on `channel` for as long as the pool is open, passing what it hears to `on`. If
/// the listening connection fails, it reconnects with backoff; waiters still wake on their
/// own timeouts meanwhile.
fn spawn_listening(store: &Store, channel: &'static str, on: impl Fn(Heard<'_>) + Send + 'static) {
    let pool = store.pool().clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if listener.listen(channel).await.is_ok() {
                        backoff = Duration::from_millis(100);
                        on(Heard::Listening);
                        while let Ok(notification) = listener.recv().await {
                            on(Heard::Notification(notification.payload()));
                        }
                    }
                }
                Err(e) if pool.is_closed() => {
                    tracing::debug!(error = %e, "pool closed; listener stops");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, channel, "cannot listen; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// Wakes one waiter (or the next to wait) for each notification on a channel: for loops that
/// share work, so that one notification costs one claim, not one per loop. All wake when the
/// listening connection is (re)opened.
pub(crate) fn spawn_listener(store: &Store, channel: &'static str) -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let wake = notify.clone();
    spawn_listening(store, channel, move |heard| match heard {
        Heard::Listening => wake.notify_waiters(),
        Heard::Notification(_) => wake.notify_one(),
    });
    notify
}

/// Waits for a notification, at most `timeout`.
pub(crate) async fn wait(notify: &Notify, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, notify.notified()).await;
}

/// Waiters for notifications about particular runs, whose payload is the run's id: a
/// notification wakes the waiters of its run alone (a client awaiting a thousand results
/// reads one run's state when that run closes, not a thousand), and every waiter wakes when
/// the listening connection was lost and is back.
#[derive(Default)]
pub(crate) struct RunWaiters {
    waiting: Mutex<HashMap<RunId, (Arc<Notify>, usize)>>,
}

impl RunWaiters {
    /// Listens on `channel` and wakes the waiters of each notification's run.
    pub(crate) fn spawn(store: &Store, channel: &'static str) -> Arc<RunWaiters> {
        let waiters = Arc::new(RunWaiters::default());
        let hearing = waiters.clone();
        spawn_listening(store, channel, move |heard| match heard {
            Heard::Listening => hearing.wake_all(),
            Heard::Notification(payload) => match payload.parse::<uuid::Uuid>() {
                Ok(run) => hearing.wake(RunId::from_uuid(run)),
                Err(_) => tracing::warn!(payload, channel, "a notification names no run"),
            },
        });
        waiters
    }

    /// Starts waiting for notifications about `run`, until the returned watch is dropped.
    pub(crate) fn watch(self: &Arc<Self>, run: RunId) -> RunWatch {
        let mut waiting = self.lock();
        let entry = waiting.entry(run).or_insert_with(|| (Arc::default(), 0));
        entry.1 += 1;
        RunWatch {
            waiters: self.clone(),
            run,
            notify: entry.0.clone(),
        }
    }

    fn wake(&self, run: RunId) {
        if let Some((notify, _)) = self.lock().get(&run) {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for (notify, _) in self.lock().values() {
            notify.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, (Arc<Notify>, usize)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Interest in one run's notifications (see [`RunWaiters::watch`]).
pub(crate) struct RunWatch {
    waiters: Arc<RunWaiters>,
    run: RunId,
    notify: Arc<Notify>,
}

impl RunWatch {
    /// Woken by each notification about the run. A `notified()` future receives every
    /// notification sent after it was created, polled or not.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for RunWatch {
    fn drop(&mut self) {
        let mut waiting = self.waiters.lock();
        if let Some(entry) = waiting.get_mut(&self.run) {
            entry.1 -= 1;
            if entry.1 == 0 {
                waiting.remove(&self.run);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_notification_wakes_its_own_waiters_only() {
        let waiters = Arc::new(RunWaiters::default());
        let (a, b) = (RunId::random(), RunId::random());
        let watch_a = waiters.watch(a);
        let watch_b = waiters.watch(b);
        let woken_a = watch_a.notify().notified();
        let woken_b = watch_b.notify().notified();
        waiters.wake(a);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), woken_a)
                .await
                .is_ok()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), woken_b)
                .await
                .is_err()
        );
    }

    #[test]
    fn a_run_stops_being_watched_when_its_last_watch_drops() {
        let waiters = Arc::new(RunWaiters::default());
        let run = RunId::random();
        let first = waiters.watch(run);
        let second = waiters.watch(run);
        drop(first);
        assert!(waiters.lock().contains_key(&run));
        drop(second);
        assert!(waiters.lock().is_empty());
    }
}
