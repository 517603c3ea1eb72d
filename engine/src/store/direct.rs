//! Direct steps: one run stepped on a notification's word, in one statement, with no claim.
//!
//! A batch costs four round trips (`BEGIN`, claim, write, `COMMIT`) because it must lock its
//! runs before it knows what to step. When a notification names the one input a run is
//! waiting for (an activity's outcome) or carries a new run's first event, and the engine
//! holds that run's orchestrator at its head, the engine can step first and write after: one
//! statement that locks the run, checks that nothing moved since, and writes the step, or
//! writes nothing. Any doubt goes to the batch path, which is always correct on its own:
//! a direct step only ever saves it work.
//!
//! What the statement checks before it writes (its `fence`), on the run's row lock:
//! - the run's head is the one the engine stepped from, and it is open and not parked;
//! - the run's inbox holds exactly the inputs the step applied (nothing else arrived that
//!   arrival order would put first, and no timer is pending: the statement queues nothing);
//! - a closing run has no open child (whose parent-close policy needs statements of its own).
//!
//! An input delivered after the statement's snapshot but before its lock is not in that
//! snapshot. Its delivery wrote the run's queue row (deliveries always write a new version of
//! it), so the statement removes the queue row only if it is still the version its snapshot
//! saw: the run stays queued for the batch path to take the new input.

use reprise_history::{ChainHash, Event, Limits, RunId, Seq, Timestamp};
use reprise_sdk::Effects;
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::rows::{HistoryRows, seq_param};
use crate::store::step::{Notifications, TaskRows, write_ctes};
use crate::store::{Store, now};

/// The payload announcing that one input reached an open run's inbox, as an SQL expression
/// over a delivered inbox row `d` (see [`RunHint::Input`]). It is empty (a plain wake-up) for
/// an event over 3,000 bytes: hex doubles it, and a payload must stay under 8,000 bytes.
macro_rules! input_hint {
    () => {
        "CASE WHEN octet_length(d.event) <= 3000
              THEN 'input ' || d.run_id || ' ' || d.id || ' '
                   || (extract(epoch FROM d.visible_at) * 1000000)::bigint || ' '
                   || encode(d.event, 'hex')
              ELSE '' END"
    };
}
pub(crate) use input_hint;

/// The payload announcing a new run, as an SQL expression over its first event's row `n`
/// (`run_id`, `event`; see [`RunHint::Started`]); empty for an event over 3,000 bytes.
macro_rules! started_hint {
    () => {
        "CASE WHEN octet_length(n.event) <= 3000
              THEN 'started ' || n.run_id || ' ' || encode(n.event, 'hex')
              ELSE '' END"
    };
}
pub(crate) use started_hint;

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

/// Writes one run's step if, and only if, the run is as the step assumed (see the module's
/// documentation): `$18` the run, `$19`/`$20` the head it was stepped from, `$17` the inbox
/// rows it applied (sorted), `$21`/`$22` its new head, `$23` the status it closes with (or
/// NULL), `$24`/`$25` the notifications; the events and tasks as in a batch (`$2` to `$16`,
/// see `write_ctes!`).
/// Every write reads `fence` first, so none happens unless the fence holds; the fence takes
/// the run's row lock, skipping a run another transaction holds.
pub(crate) const DIRECT_STEP_SQL: &str = concat!(
    "WITH fence AS MATERIALIZED (
         SELECT r.run_id FROM reprise.runs r
          WHERE r.run_id = $18 AND r.head_seq = $19 AND r.head_hash = $20
            AND r.closed_at IS NULL AND r.parked_reason IS NULL
            AND (SELECT COALESCE(array_agg(i.id ORDER BY i.id) FILTER (WHERE i.visible_at <= ",
    now!(),
    "), '{}') = $17::bigint[] AND count(*) = cardinality($17::bigint[])
                   FROM reprise.inbox i WHERE i.run_id = $18)
            AND ($23::text IS NULL OR NOT EXISTS (
                 SELECT 1 FROM (SELECT status FROM reprise.runs WHERE parent_run_id = $18 OFFSET 0) c
                  WHERE c.status = 'running'))
            FOR NO KEY UPDATE SKIP LOCKED),
     ",
    write_ctes!(only if "EXISTS (SELECT 1 FROM fence)"),
    ",
     released AS (
         UPDATE reprise.runs r
            SET head_seq = $21, head_hash = $22, applied_seq = $21,
                status = COALESCE($23, r.status),
                closed_at = CASE WHEN $23::text IS NULL THEN r.closed_at ELSE ",
    now!(),
    " END
          WHERE r.run_id = ANY (ARRAY(SELECT run_id FROM fence))),
     dequeued AS (
         DELETE FROM reprise.ready_runs q
          WHERE q.run_id = ANY (ARRAY(SELECT run_id FROM fence))
            AND ($23::text IS NOT NULL
                 OR q.xmin = (SELECT s.xmin FROM reprise.ready_runs s WHERE s.run_id = $18))),
     closed_tasks AS (
         DELETE FROM reprise.activity_tasks t
          WHERE $23::text IS NOT NULL AND t.run_id = ANY (ARRAY(SELECT run_id FROM fence))
            AND num_nulls(t.lease_owner) = 1),
     notified AS (
         SELECT pg_notify(n.channel, n.payload)
           FROM UNNEST($24::text[], $25::text[]) AS n(channel, payload)
          WHERE EXISTS (SELECT 1 FROM fence))
     SELECT (SELECT count(*) FROM fence) AS fenced, (SELECT count(*) FROM notified) AS sent"
);

/// One run's step, to be written directly.
pub(crate) struct DirectStep<'a> {
    pub(crate) run_id: RunId,
    /// The head the step was taken from.
    pub(crate) head_seq: Seq,
    pub(crate) head_hash: ChainHash,
    /// The inbox rows the step applied.
    pub(crate) inbox_ids: &'a [i64],
    /// The step's events: its inputs and decisions, in order.
    pub(crate) events: &'a [Event],
    /// What they do: nothing but rows (see `Effects::are_rows_only`).
    pub(crate) effects: &'a Effects<'a>,
}

impl Store {
    /// Writes a direct step in one statement (see the module's documentation). Returns the
    /// run's new head hash, or `None` when the run was not as the step assumed: then nothing
    /// was written, and the step must be thrown away.
    pub(crate) async fn step_direct(
        &self,
        conn: &mut PgConnection,
        step: DirectStep<'_>,
    ) -> Result<Option<ChainHash>> {
        let limits: &Limits = self.limits();
        let mut history = HistoryRows::default();
        let head_hash = history.push_run(step.run_id, step.head_hash, step.events, limits)?;
        let head_seq = step.events.last().map_or(step.head_seq, |e| e.seq);
        let mut tasks = TaskRows::default();
        let mut notes = Notifications::default();
        for task in &step.effects.tasks {
            tasks.push(step.run_id, task, limits)?;
            notes.task_queue(task.activity.task_queue.as_str());
        }
        let closing = step.effects.close.as_ref();
        if let Some(close) = closing {
            notes.closed(step.run_id, Some(close.event), limits);
        }
        let mut inbox_ids = step.inbox_ids.to_vec();
        inbox_ids.sort_unstable();
        let query = history.bind_to(sqlx::query(DIRECT_STEP_SQL).bind(self.offset()));
        let query = tasks
            .bind_to(query)
            .bind(inbox_ids)
            .bind(step.run_id.as_uuid())
            .bind(seq_param(step.head_seq))
            .bind(step.head_hash.as_bytes().as_slice())
            .bind(seq_param(head_seq))
            .bind(head_hash.as_bytes().as_slice())
            .bind(closing.map(|c| c.state.as_str()));
        let row = notes
            .bind_to(query)
            .fetch_one(conn)
            .await
            .map_err(Error::from_db)?;
        let fenced: i64 = row.try_get("fenced").map_err(Error::from_db)?;
        Ok((fenced == 1).then_some(head_hash))
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
