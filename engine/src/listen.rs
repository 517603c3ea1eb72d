//! Wake-ups from `LISTEN/NOTIFY`, with a bounded poll as the fallback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reprise_history::RunId;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, oneshot};

use crate::backoff::Backoff;
use crate::store::{QUERIES_CHANNEL, RUNS_CHANNEL, SCHEDULES_CHANNEL, Store};

/// What a listener heard.
enum Hearing<'a> {
    /// A notification: its channel and payload.
    Notification { channel: &'a str, payload: &'a str },
    /// The listening connection was (re)opened: anything may have happened while it was not
    /// listening.
    Listening,
}

/// Something that listens, with the task that feeds it: the task stops, and gives back its
/// connection, when this is dropped (or when the pool closes).
pub(crate) struct Listening<T> {
    value: Arc<T>,
    _stop: oneshot::Sender<()>,
}

impl<T> Listening<T> {
    /// The listening value, shared.
    pub(crate) fn shared(&self) -> Arc<T> {
        self.value.clone()
    }
}

impl<T> std::ops::Deref for Listening<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// Listens on `channels`, on one connection, until `stop` fires or the pool closes, passing
/// what it hears to `on`. If the listening connection fails, it reconnects with backoff;
/// waiters still wake on their own timeouts meanwhile.
fn spawn_listening(
    store: &Store,
    channels: &'static [&'static str],
    on: impl Fn(Hearing<'_>) + Send + 'static,
    mut stop: oneshot::Receiver<()>,
) {
    let pool = store.pool().clone();
    let metrics = store.metrics().clone();
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        let mut connected_before = false;
        loop {
            let connected = tokio::select! {
                _ = &mut stop => return,
                connected = PgListener::connect_with(&pool) => connected,
            };
            match connected {
                Ok(mut listener) => {
                    if listener.listen_all(channels.iter().copied()).await.is_ok() {
                        backoff.reset();
                        if std::mem::replace(&mut connected_before, true) {
                            channels
                                .iter()
                                .for_each(|channel| metrics.listen_reconnected(channel));
                        }
                        on(Hearing::Listening);
                        // `try_recv`, not `recv`: the latter reconnects by itself and loses
                        // what was sent meanwhile without a word; this says the connection
                        // was lost (`None`), and the next connection counts as `Listening`.
                        loop {
                            let heard = tokio::select! {
                                _ = &mut stop => return,
                                heard = listener.try_recv() => heard,
                            };
                            match heard {
                                Ok(Some(notification)) => on(Hearing::Notification {
                                    channel: notification.channel(),
                                    payload: notification.payload(),
                                }),
                                Ok(None) | Err(_) => break,
                            }
                        }
                    }
                }
                Err(e) if pool.is_closed() => {
                    tracing::debug!(error = %e, "pool closed; listener stops");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, ?channels, "cannot listen; retrying"),
            }
            tokio::select! {
                _ = &mut stop => return,
                () = backoff.wait() => {}
            }
        }
    });
}

/// Starts `on` listening on `channels` for `value`, until the returned value is dropped.
fn listen<T: Send + Sync + 'static>(
    store: &Store,
    channels: &'static [&'static str],
    value: T,
    on: impl Fn(&T, Hearing<'_>) + Send + 'static,
) -> Listening<T> {
    let value = Arc::new(value);
    let hearing = value.clone();
    let (stop, stopped) = oneshot::channel();
    spawn_listening(store, channels, move |heard| on(&hearing, heard), stopped);
    Listening { value, _stop: stop }
}

/// Wakes one waiter (or the next to wait) for each notification on a channel: for loops that
/// share work, so that one notification costs one claim, not one per loop. All wake when the
/// listening connection is (re)opened.
pub(crate) fn spawn_listener(store: &Store, channel: &'static [&'static str]) -> Listening<Notify> {
    listen(store, channel, Notify::new(), |wake, heard| match heard {
        Hearing::Listening => wake.notify_waiters(),
        Hearing::Notification { .. } => wake.notify_one(),
    })
}

/// What a channel's notifications said since a waiter last looked: how many came, and the
/// payload of the first. Loops that share work wake one per notification, as with
/// [`spawn_listener`]; the woken loop reads what was heard, so that a lone notification's
/// payload can tell it which run to step.
#[derive(Default)]
pub(crate) struct Heard {
    notify: Notify,
    pending: Mutex<(usize, Option<String>)>,
}

impl Heard {
    fn hear(&self, payload: Option<&str>, everyone: bool) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.0 += 1;
            if pending.0 == 1 {
                pending.1 = payload.filter(|p| !p.is_empty()).map(str::to_string);
            }
        }
        if everyone {
            self.notify.notify_waiters();
        } else {
            self.notify.notify_one();
        }
    }

    /// What to wait on.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }

    /// The payload of the one notification heard since the last look, if exactly one came and
    /// it had a payload; forgets everything heard.
    pub(crate) fn take_lone_payload(&self) -> Option<String> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, payload) = std::mem::take(&mut *pending);
        if count == 1 { payload } else { None }
    }
}

/// What wakes an engine, heard on one connection: work for its runs (`reprise_runs`, see
/// [`Heard`]) and queries asked (`reprise_queries`: one waiter woken per query).
#[derive(Default)]
pub(crate) struct EngineWakeups {
    pub(crate) runs: Heard,
    pub(crate) queries: Notify,
    /// The scheduler loop's (one per engine): a permit is kept if it is not waiting.
    pub(crate) schedules: Notify,
}

impl EngineWakeups {
    /// Listens on both channels. A (re)opened connection wakes every waiter.
    pub(crate) fn spawn(store: &Store) -> Listening<EngineWakeups> {
        listen(
            store,
            &[RUNS_CHANNEL, QUERIES_CHANNEL, SCHEDULES_CHANNEL],
            EngineWakeups::default(),
            |wakeups, heard| match heard {
                Hearing::Listening => {
                    wakeups.runs.hear(None, true);
                    wakeups.queries.notify_waiters();
                    wakeups.schedules.notify_one();
                }
                Hearing::Notification { channel, .. } if channel == SCHEDULES_CHANNEL => {
                    wakeups.schedules.notify_one();
                }
                Hearing::Notification { channel, .. } if channel == QUERIES_CHANNEL => {
                    wakeups.queries.notify_one();
                }
                Hearing::Notification { payload, .. } => wakeups.runs.hear(Some(payload), false),
            },
        )
    }
}

/// Waits for a notification, at most `timeout`.
pub(crate) async fn wait(notify: &Notify, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, notify.notified()).await;
}

/// Waiters for notifications about particular runs, whose payload is the run's id: a
/// notification wakes the waiters of its run alone (a client awaiting a thousand results reads
/// one run's state when that run closes, not a thousand), and every waiter wakes when the
/// listening connection was lost and is back. A notification only wakes: any role can send
/// one, so a waiter reads what happened from the tables.
#[derive(Default)]
pub(crate) struct RunWaiters {
    waiting: Mutex<HashMap<RunId, Waiting>>,
}

/// The waiters of one run.
#[derive(Default)]
struct Waiting {
    notify: Arc<Notify>,
    watches: usize,
}

impl RunWaiters {
    /// Listens on `channels` and wakes the waiters of each notification's run (or query).
    pub(crate) fn spawn(store: &Store, channels: &'static [&'static str]) -> Listening<RunWaiters> {
        listen(
            store,
            channels,
            RunWaiters::default(),
            move |hearing, heard| match heard {
                Hearing::Listening => hearing.wake_all(),
                Hearing::Notification { channel, payload } => match payload.parse::<uuid::Uuid>() {
                    Ok(run) => hearing.wake(RunId::from_uuid(run)),
                    Err(_) => tracing::warn!(payload, channel, "a notification names no run"),
                },
            },
        )
    }

    /// Starts waiting for notifications about `run`, until the returned watch is dropped.
    pub(crate) fn watch(self: &Arc<Self>, run: RunId) -> RunWatch {
        let mut waiting = self.lock();
        let entry = waiting.entry(run).or_default();
        entry.watches += 1;
        RunWatch {
            waiters: self.clone(),
            run,
            notify: entry.notify.clone(),
        }
    }

    fn wake(&self, run: RunId) {
        if let Some(waiting) = self.lock().get(&run) {
            waiting.notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for waiting in self.lock().values() {
            waiting.notify.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Waiting>> {
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
            entry.watches -= 1;
            if entry.watches == 0 {
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
    fn a_payload_is_read_only_when_its_notification_came_alone() {
        let heard = Heard::default();
        heard.hear(Some("input x"), false);
        assert_eq!(heard.take_lone_payload().as_deref(), Some("input x"));
        assert_eq!(heard.take_lone_payload(), None, "taking forgets");
        heard.hear(Some("input x"), false);
        heard.hear(Some("input y"), false);
        assert_eq!(heard.take_lone_payload(), None, "two need a batch");
        heard.hear(Some(""), false);
        assert_eq!(heard.take_lone_payload(), None, "a plain wake-up");
        heard.hear(None, true);
        assert_eq!(heard.take_lone_payload(), None, "a reconnection");
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
