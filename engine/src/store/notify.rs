//! Notifications: the channels, what their payloads say, and the notifications a step sends.
//!
//! PostgreSQL shows notifications to every role that can connect, and delivers them only once
//! their transaction committed. A payload is a hint, never the only source of truth: a payload
//! that does not parse is a plain wake-up, and the batch path does without it.
//!
//! Wire formats (written by the SQL in `store/sql/`, read here):
//! - `reprise_runs`: empty (work is due), `started <run> <first event hex>` from
//!   `start_runs.sql`, or `input <run> <inbox id> <delivery time µs> <input hex>` from
//!   `finish_tasks.sql`; events over 3,000 bytes send an empty payload;
//! - `reprise_tasks`: the task queue that has work;
//! - `reprise_closed`: `<run>` or `<run> <closing event hex>` (events up to 3,000 bytes);
//! - `reprise_queries`: empty (a query was asked; see `store/queries.rs`);
//! - `reprise_answers`: the id of the query answered;
//! - `reprise_schedules`: empty (a schedule changed; see `store/schedules.rs`).

use reprise_history::{Event, Limits, RunId, Timestamp};
use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::store::bind::Bound;

/// Channel notified when a run has work.
pub(crate) const RUNS_CHANNEL: &str = "reprise_runs";
/// Channel notified (with the queue name) when activity tasks are ready.
pub(crate) const TASKS_CHANNEL: &str = "reprise_tasks";
/// Channel notified (with the run id) when a run closes.
pub(crate) const CLOSED_CHANNEL: &str = "reprise_closed";

/// Channel notified (with no payload) when a schedule is created, changed, resumed or
/// triggered: the engines' scheduler loops look again at what is due.
pub(crate) const SCHEDULES_CHANNEL: &str = "reprise_schedules";

/// Queues a notification on `channel`; PostgreSQL delivers it when the transaction commits.
pub(crate) async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    Ok(())
}

/// What a notification on the runs channel says, when it says more than "work is due".
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RunHint {
    /// A run just started: its `WorkflowStarted` event, as stored (seq 1).
    Started { run_id: RunId, event: Vec<u8> },
    /// One input reached an open run's inbox.
    Input {
        run_id: RunId,
        /// Its inbox row.
        inbox_id: i64,
        /// Database time of its delivery: the time the step records it at.
        at: Timestamp,
        /// The input, encoded as in the inbox.
        input: Vec<u8>,
    },
}

impl RunHint {
    /// Reads a notification's payload; `None` for a plain wake-up or anything malformed (a
    /// hint is only ever an optimisation: the batch path does without it).
    pub(crate) fn parse(payload: &str) -> Option<RunHint> {
        let mut words = payload.split(' ');
        let hint = match words.next()? {
            "started" => RunHint::Started {
                run_id: RunId::from_uuid(words.next()?.parse().ok()?),
                event: hex::decode(words.next()?).ok()?,
            },
            "input" => RunHint::Input {
                run_id: RunId::from_uuid(words.next()?.parse().ok()?),
                inbox_id: words.next()?.parse().ok()?,
                at: Timestamp::from_unix_micros(words.next()?.parse().ok()?),
                input: hex::decode(words.next()?).ok()?,
            },
            _ => return None,
        };
        words.next().is_none().then_some(hint)
    }

    /// The run it is about.
    pub(crate) fn run_id(&self) -> RunId {
        match self {
            RunHint::Started { run_id, .. } | RunHint::Input { run_id, .. } => *run_id,
        }
    }
}

/// The notifications a batch sends when it commits, each once.
#[derive(Default)]
pub(crate) struct Notifications {
    sent: Vec<(&'static str, String)>,
}

impl Notifications {
    pub(crate) fn task_queue(&mut self, queue: &str) {
        self.push(TASKS_CHANNEL, queue.to_string());
    }

    /// A run closed; the payload carries its closing event (as stored) when it is at most
    /// 3,000 bytes, so that a client awaiting the result need not read it.
    pub(crate) fn closed(&mut self, run: RunId, closing: Option<&Event>, limits: &Limits) {
        let bytes = closing.and_then(|e| e.encode(limits).ok());
        let payload = match bytes {
            Some(bytes) if bytes.len() <= 3_000 => format!("{run} {}", hex::encode(bytes)),
            _ => run.to_string(),
        };
        self.push(CLOSED_CHANNEL, payload);
    }

    fn push(&mut self, channel: &'static str, payload: String) {
        if !self
            .sent
            .iter()
            .any(|(c, p)| *c == channel && *p == payload)
        {
            self.sent.push((channel, payload));
        }
    }

    /// Binds them as two arrays: channels and payloads.
    pub(crate) fn bind_to(self, bound: Bound<'_>) -> Bound<'_> {
        let (channels, payloads): (Vec<&str>, Vec<String>) = self.sent.into_iter().unzip();
        bound.bind(channels).bind(payloads)
    }

    /// Queues them all in one statement; PostgreSQL delivers them when the transaction commits.
    pub(crate) async fn send(self, conn: &mut PgConnection) -> Result<()> {
        if self.sent.is_empty() {
            return Ok(());
        }
        self.bind_to(Bound::new(
            "SELECT pg_notify(n.channel, n.payload) FROM UNNEST($1::text[], $2::text[]) AS n(channel, payload)",
        ))
        .query()
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_read_back_and_anything_else_is_a_plain_wake_up() {
        let run_id = RunId::random();
        assert_eq!(
            RunHint::parse(&format!("started {run_id} 00ff10")),
            Some(RunHint::Started {
                run_id,
                event: vec![0, 255, 16]
            })
        );
        assert_eq!(
            RunHint::parse(&format!("input {run_id} 42 1700000000000001 ab")),
            Some(RunHint::Input {
                run_id,
                inbox_id: 42,
                at: Timestamp::from_unix_micros(1_700_000_000_000_001),
                input: vec![0xab],
            })
        );
        for plain in [
            "",
            "started",
            "started not-a-uuid 00",
            &format!("started {run_id} 0g"),
            &format!("started {run_id} 00 extra"),
            &format!("input {run_id} 42 x ab"),
            &format!("input {run_id} 42 1"),
            &format!("stopped {run_id} 00"),
        ] {
            assert_eq!(RunHint::parse(plain), None, "{plain:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_payload_reads_as_a_hint_or_a_plain_wake_up(payload in ".{0,200}") {
            let _ = RunHint::parse(&payload);
        }

        #[test]
        fn input_hints_read_back(
            id in proptest::prelude::any::<i64>(),
            at in proptest::prelude::any::<i64>(),
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let run_id = RunId::random();
            let payload = format!("input {run_id} {id} {at} {}", hex::encode(&input));
            let hint = RunHint::Input {
                run_id,
                inbox_id: id,
                at: Timestamp::from_unix_micros(at),
                input,
            };
            proptest::prop_assert_eq!(RunHint::parse(&payload), Some(hint));
        }
    }
}
