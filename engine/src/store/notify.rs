//! Notifications: the channels, what their payloads say, and the notifications a step sends.
//!
//! PostgreSQL shows notifications to every role that can connect, and delivers them only once
//! their transaction committed. So a payload carries ids and wake-ups, never user data (no
//! input, result or event byte), and nothing read from one is trusted: a payload names what to
//! read, and what is read comes from the tables. A payload that does not parse is a plain
//! wake-up, and the batch path does without any.
//!
//! Wire formats (written by the SQL in `store/sql/`, read here):
//! - `reprise_runs`: empty (work is due), `started <run>` from `start_runs.sql`, or
//!   `input <run> <inbox id>` from `finish_tasks.sql`;
//! - `reprise_tasks`: the task queue that has work;
//! - `reprise_closed`: `<run>`;
//! - `reprise_queries`: empty (a query was asked; see `store/queries.rs`);
//! - `reprise_answers`: the id of the query answered, or the run whose updates a step touched;
//! - `reprise_schedules`: empty (a schedule changed; see `store/schedules.rs`).

use reprise_history::RunId;
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

/// What a notification on the runs channel says, when it says more than "work is due": which
/// run, so that an engine can read what it needs for one step and take it at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RunHint {
    /// A run just started: its `WorkflowStarted` is its only event.
    Started { run_id: RunId },
    /// One input reached an open run's inbox: its inbox row.
    Input { run_id: RunId, inbox_id: i64 },
}

impl RunHint {
    /// Reads a notification's payload; `None` for a plain wake-up or anything malformed (a
    /// hint is only ever an optimisation: the batch path does without it).
    pub(crate) fn parse(payload: &str) -> Option<RunHint> {
        let mut words = payload.split(' ');
        let hint = match words.next()? {
            "started" => RunHint::Started {
                run_id: RunId::from_uuid(words.next()?.parse().ok()?),
            },
            "input" => RunHint::Input {
                run_id: RunId::from_uuid(words.next()?.parse().ok()?),
                inbox_id: words.next()?.parse().ok()?,
            },
            _ => return None,
        };
        words.next().is_none().then_some(hint)
    }

    /// The run it is about.
    pub(crate) fn run_id(&self) -> RunId {
        match self {
            RunHint::Started { run_id } | RunHint::Input { run_id, .. } => *run_id,
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

    /// A run closed: its waiters read how (`Store::run_end`).
    pub(crate) fn closed(&mut self, run: RunId) {
        self.push(CLOSED_CHANNEL, run.to_string());
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
            RunHint::parse(&format!("started {run_id}")),
            Some(RunHint::Started { run_id })
        );
        assert_eq!(
            RunHint::parse(&format!("input {run_id} 42")),
            Some(RunHint::Input {
                run_id,
                inbox_id: 42
            })
        );
        for plain in [
            "",
            "started",
            "started not-a-uuid",
            &format!("started {run_id} 00"),
            &format!("input {run_id} x"),
            &format!("input {run_id}"),
            &format!("input {run_id} 42 1700000000000001 ab"),
            &format!("stopped {run_id}"),
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
        fn input_hints_read_back(id in proptest::prelude::any::<i64>()) {
            let run_id = RunId::random();
            let payload = format!("input {run_id} {id}");
            proptest::prop_assert_eq!(
                RunHint::parse(&payload),
                Some(RunHint::Input { run_id, inbox_id: id })
            );
        }
    }
}
