//! Reading and binding rows: the one home of the conversions between stored columns and the
//! history crate's types. A stored value no type has (a negative seq, an unknown status or
//! policy name) is refused as corruption, never coerced.

use reprise_history::{
    ChainHash, ChainKey, Event, Limits, ParentClosePolicy, RunId, RunState, Seq, chain,
};
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::bind::Bound;
use crate::store::to_datetime;

/// Appends history rows (see `sql/insert_history.sql`).
pub(crate) const INSERT_HISTORY_SQL: &str = include_str!("sql/insert_history.sql");

pub(crate) fn run_id(row: &sqlx::postgres::PgRow, column: &str) -> Result<RunId> {
    let id: uuid::Uuid = row.try_get(column).map_err(Error::from_db)?;
    Ok(RunId::from_uuid(id))
}

pub(crate) fn seq(row: &sqlx::postgres::PgRow, column: &str) -> Result<Seq> {
    let n: i64 = row.try_get(column).map_err(Error::from_db)?;
    u64::try_from(n).map(Seq::new).map_err(|_| Error::Corrupt {
        what: column.to_string(),
        reason: format!("negative seq {n}"),
    })
}

pub(crate) fn seq_param(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

/// A stored run status.
pub(crate) fn run_state(row: &sqlx::postgres::PgRow, column: &str) -> Result<RunState> {
    let name: &str = row.try_get(column).map_err(Error::from_db)?;
    RunState::parse(name).map_err(|e| Error::Corrupt {
        what: column.to_string(),
        reason: e.to_string(),
    })
}

/// A stored parent-close policy (`parent_close_policy`; NULL for a run without a parent).
pub(crate) fn parent_close_policy(
    row: &sqlx::postgres::PgRow,
) -> Result<Option<ParentClosePolicy>> {
    let name: Option<&str> = row.try_get("parent_close_policy").map_err(Error::from_db)?;
    name.map(|n| {
        ParentClosePolicy::parse(n).map_err(|e| Error::Corrupt {
            what: "parent_close_policy".to_string(),
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// A stored count that cannot be negative (an attempt, a number of events).
pub(crate) fn count(row: &sqlx::postgres::PgRow, column: &str) -> Result<u32> {
    let n: i32 = row.try_get(column).map_err(Error::from_db)?;
    u32::try_from(n).map_err(|_| Error::Corrupt {
        what: column.to_string(),
        reason: format!("negative count {n}"),
    })
}

/// History rows of one or more runs, each chained to its run's previous hash, to be written
/// in one statement.
#[derive(Default)]
pub(crate) struct HistoryRows {
    runs: Vec<uuid::Uuid>,
    seqs: Vec<i64>,
    times: Vec<chrono::DateTime<chrono::Utc>>,
    kinds: Vec<&'static str>,
    bodies: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

impl HistoryRows {
    /// Adds a run's events after `prev`, chained with `key` if there is one; returns the
    /// run's new head hash.
    pub(crate) fn push_run(
        &mut self,
        run_id: RunId,
        prev: ChainHash,
        events: &[Event],
        limits: &Limits,
        key: Option<&ChainKey>,
    ) -> Result<ChainHash> {
        let mut hash = prev;
        for event in events {
            let bytes = event.encode(limits)?;
            hash = hash.next_with(key, &bytes);
            self.runs.push(*run_id.as_uuid());
            self.seqs.push(seq_param(event.seq));
            self.times.push(to_datetime(event.recorded_at)?);
            self.kinds.push(event.kind.name());
            self.bodies.push(bytes);
            self.hashes.push(hash.as_bytes().to_vec());
        }
        Ok(hash)
    }

    /// Whether there are no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Binds the rows as six arrays: run ids, seqs, times, kinds, bodies, hashes.
    pub(crate) fn bind_to(self, bound: Bound<'_>) -> Bound<'_> {
        bound
            .bind(self.runs)
            .bind(self.seqs)
            .bind(self.times)
            .bind(self.kinds)
            .bind(self.bodies)
            .bind(self.hashes)
    }

    /// Writes the rows (nothing when there are none).
    pub(crate) async fn insert(self, conn: &mut PgConnection) -> Result<()> {
        if self.runs.is_empty() {
            return Ok(());
        }
        self.bind_to(Bound::new(INSERT_HISTORY_SQL))
            .query()
            .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }
}

/// History rows (`seq`, `event`, `hash`) as the chain's links, in their order.
pub(crate) fn links_from_rows(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<chain::ChainLink<'_>>> {
    rows.iter()
        .map(|row| {
            let bytes: &[u8] = row.try_get("event").map_err(Error::from_db)?;
            let hash: &[u8] = row.try_get("hash").map_err(Error::from_db)?;
            Ok(chain::ChainLink {
                seq: seq(row, "seq")?,
                bytes,
                hash: ChainHash::from_slice(hash)?,
            })
        })
        .collect()
}

/// Decodes history rows (`seq`, `event`, `hash`, in order) of one run, verifying the chain
/// (with `key` where it is keyed).
pub(crate) fn events_from_rows(
    rows: &[sqlx::postgres::PgRow],
    limits: &Limits,
    key: Option<&ChainKey>,
) -> Result<Vec<Event>> {
    let links = links_from_rows(rows)?;
    chain::verify_keyed(links.iter().copied(), key)?;
    links
        .iter()
        .map(|l| Ok(Event::decode(l.bytes, limits)?))
        .collect()
}
