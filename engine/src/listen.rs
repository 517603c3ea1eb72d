//! Wake-ups from `LISTEN/NOTIFY`, with a bounded poll as the fallback.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::store::Store;

/// Whom a notification wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// One waiter (or the next to wait): for loops that share work, so that one notification
    /// costs one claim, not one per loop.
    One,
    /// Every waiter: for waiters that each wait for their own thing (results).
    All,
}

/// Wakes waiters whenever a notification arrives on a channel. If the listening connection
/// fails, it reconnects with backoff; waiters still wake on their own timeouts meanwhile.
pub(crate) fn spawn_listener(store: &Store, channel: &'static str, mode: Wake) -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let pool = store.pool().clone();
    let wake = notify.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if listener.listen(channel).await.is_ok() {
                        backoff = Duration::from_millis(100);
                        // Anything may have happened while we were not listening.
                        wake.notify_waiters();
                        while listener.recv().await.is_ok() {
                            if mode == Wake::All {
                                wake.notify_waiters();
                            }
                            wake.notify_one();
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
    notify
}

/// Waits for a notification, at most `timeout`.
pub(crate) async fn wait(notify: &Notify, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, notify.notified()).await;
}
