//! Finding runs, for people and tools: filters, keyset pages, counts per status, one run by
//! id with its relations (parent, children, the continue-as-new chain), and pages of a
//! history.
//!
//! A listing is one index scan per status (`runs_by_status`: status, created_at, run_id;
//! with a workflow type, `runs_by_type`), merged: the newest runs of any status come off the
//! seven scans' heads without sorting the table, so a page costs the same with a thousand
//! runs or a million. Listing statements are planned with their parameters' values (unnamed
//! statements, not cached plans): a workflow-id prefix then uses `runs_by_workflow_id` on a
//! database whose collation is C, as Reprise's own are, and a rare type its index.

use reprise_history::{
    ChainHash, ChainKey, Event, RunId, RunState, Seq, TaskQueue, Timestamp, WorkflowId,
    WorkflowType, chain,
};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::rows::{links_from_rows, run_state, seq, seq_param};
use crate::store::{Store, to_datetime, to_timestamp};

/// A run as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The run.
    pub run_id: RunId,
    /// Its workflow id.
    pub workflow_id: WorkflowId,
    /// Its workflow type.
    pub workflow_type: WorkflowType,
    /// The task queue its orchestrator runs on.
    pub task_queue: TaskQueue,
    /// Its status.
    pub status: RunState,
    /// Why it is parked, if it is.
    pub parked_reason: Option<String>,
    /// The build that parked it, if one did.
    pub parked_build: Option<String>,
    /// The seq of its last event.
    pub head_seq: Seq,
    /// When it was created (database time).
    pub created_at: Timestamp,
    /// When it closed, if it has.
    pub closed_at: Option<Timestamp>,
    /// When its last event was recorded (its last step, or the last input it received).
    pub last_event_at: Timestamp,
    /// The run that started it as a child, if one did.
    pub parent_run_id: Option<RunId>,
    /// The run it continues (continue-as-new, a retry, a reset), if any.
    pub previous_run_id: Option<RunId>,
}

/// Which runs to list (every condition given must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this status.
    pub status: Option<RunState>,
    /// Only parked runs.
    pub parked: bool,
    /// Only this workflow type.
    pub workflow_type: Option<WorkflowType>,
    /// Only workflow ids that start with this text.
    pub workflow_id_prefix: Option<String>,
    /// Only runs whose orchestrator runs on this task queue.
    pub task_queue: Option<TaskQueue>,
    /// Only runs created at or after this time.
    pub created_from: Option<Timestamp>,
    /// Only runs created before this time.
    pub created_before: Option<Timestamp>,
}

impl RunFilter {
    /// The statuses a run it matches may have: parked runs are open.
    fn statuses(&self) -> Vec<RunState> {
        match (self.status, self.parked) {
            (Some(status), _) => vec![status],
            (None, true) => vec![RunState::Running],
            (None, false) => RunState::ALL.to_vec(),
        }
    }
}

/// Where a page of runs ends: pass it to get the next page (keyset paging, not offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunCursor {
    created_at: Timestamp,
    run_id: RunId,
}

impl RunCursor {
    /// The cursor after the run `run_id` created at `created_at`.
    pub(crate) fn at(created_at: Timestamp, run_id: RunId) -> RunCursor {
        RunCursor { created_at, run_id }
    }

    /// When the run it is after was created.
    pub(crate) fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// The run it is after.
    pub(crate) fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The cursor after `run` (the last run of a page).
    pub fn after(run: &RunSummary) -> RunCursor {
        RunCursor {
            created_at: run.created_at,
            run_id: run.run_id,
        }
    }

    /// The cursor as text, for a URL or a command line (`<micros>_<run id>`).
    pub fn token(&self) -> String {
        format!("{}_{}", self.created_at.as_unix_micros(), self.run_id)
    }

    /// Reads a cursor written by [`RunCursor::token`].
    pub fn parse(token: &str) -> Result<RunCursor> {
        let bad = || Error::InvalidConfig(format!("{token:?} is not a run cursor"));
        let (micros, run) = token.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let run = uuid::Uuid::parse_str(run).map_err(|_| bad())?;
        Ok(RunCursor {
            created_at: Timestamp::from_unix_micros(micros),
            run_id: RunId::from_uuid(run),
        })
    }
}

/// How many runs of one status match a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCount {
    /// The status.
    pub status: RunState,
    /// How many runs, up to the cap asked for.
    pub count: u64,
    /// Whether there are more than `count` (the count stopped at the cap).
    pub more: bool,
}

/// The columns of a [`RunSummary`], from `reprise.runs` as `runs`.
const SUMMARY_COLUMNS: &str = "runs.run_id, runs.workflow_id, runs.workflow_type, runs.task_queue,
    runs.status, runs.parked_reason, runs.parked_build, runs.head_seq, runs.created_at,
    runs.closed_at, runs.parent_run_id, runs.previous_run_id,
    (SELECT h.recorded_at FROM reprise.history h
      WHERE h.run_id = runs.run_id AND h.seq = runs.head_seq) AS last_event_at";

/// The filter's conditions but the status, on parameters `$1`..`$6` (see [`bind_filter`]).
const FILTER_CONDITIONS: &str = "(NOT $1 OR parked_reason IS NOT NULL)
    AND ($2::text IS NULL OR workflow_type = $2)
    AND ($3::text IS NULL OR workflow_id LIKE $3)
    AND ($4::text IS NULL OR task_queue = $4)
    AND ($5::timestamptz IS NULL OR created_at >= $5)
    AND ($6::timestamptz IS NULL OR created_at < $6)";

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `$1`..`$6` of [`FILTER_CONDITIONS`].
fn bind_filter<'q>(query: PgQuery<'q>, filter: &'q RunFilter) -> Result<PgQuery<'q>> {
    Ok(query
        .bind(filter.parked)
        .bind(filter.workflow_type.as_ref().map(WorkflowType::as_str))
        .bind(filter.workflow_id_prefix.as_deref().map(like_prefix))
        .bind(filter.task_queue.as_ref().map(TaskQueue::as_str))
        .bind(filter.created_from.map(to_datetime).transpose()?)
        .bind(filter.created_before.map(to_datetime).transpose()?))
}

/// A `LIKE` pattern matching text that starts with `prefix`, taken literally.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A run summary from a row with [`SUMMARY_COLUMNS`].
fn summary(row: &sqlx::postgres::PgRow) -> Result<RunSummary> {
    let text = |column| row.try_get::<String, _>(column).map_err(Error::from_db);
    let time = |column| {
        row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(column)
            .map_err(Error::from_db)
            .map(|t| t.map(to_timestamp))
    };
    let run = |column| {
        row.try_get::<Option<uuid::Uuid>, _>(column)
            .map_err(Error::from_db)
            .map(|id| id.map(RunId::from_uuid))
    };
    let created_at = to_timestamp(row.try_get("created_at").map_err(Error::from_db)?);
    Ok(RunSummary {
        run_id: RunId::from_uuid(row.try_get("run_id").map_err(Error::from_db)?),
        workflow_id: WorkflowId::new(text("workflow_id")?)?,
        workflow_type: WorkflowType::new(text("workflow_type")?)?,
        task_queue: TaskQueue::new(text("task_queue")?)?,
        status: run_state(row, "status")?,
        parked_reason: row.try_get("parked_reason").map_err(Error::from_db)?,
        parked_build: row.try_get("parked_build").map_err(Error::from_db)?,
        head_seq: seq(row, "head_seq")?,
        created_at,
        closed_at: time("closed_at")?,
        // A run inserted without its first event (never by Reprise) shows its creation.
        last_event_at: time("last_event_at")?.unwrap_or(created_at),
        parent_run_id: run("parent_run_id")?,
        previous_run_id: run("previous_run_id")?,
    })
}

/// Which end of a listing comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// What people look for: the runs page, the API.
    NewestFirst,
    /// What a bulk operation walks: a run whose start committed late, with a creation time
    /// a little before the batch's, is reached last instead of being passed already.
    OldestFirst,
}

/// One page of runs in `order`, and the cursor of the next page if there may be one, on
/// `conn` (a bulk operation's chunk lists in its own transaction).
pub(crate) async fn list_in(
    conn: &mut sqlx::PgConnection,
    filter: &RunFilter,
    after: Option<RunCursor>,
    limit: i64,
    order: Order,
) -> Result<(Vec<RunSummary>, Option<RunCursor>)> {
    let (direction, beyond) = match order {
        Order::NewestFirst => ("DESC", "<"),
        Order::OldestFirst => ("ASC", ">"),
    };
    // One branch per status, each an index scan that stops at `limit` rows; the outer
    // query merges them. The SQL is built from our own constants and status names, never
    // from input (which is bound), hence `AssertSqlSafe` here and below.
    let branches: Vec<String> = filter
        .statuses()
        .into_iter()
        .map(|status| {
            format!(
                "(SELECT run_id, created_at FROM reprise.runs
                   WHERE status = '{}' AND {FILTER_CONDITIONS}
                     AND ($7::timestamptz IS NULL OR (created_at, run_id) {beyond} ($7, $8))
                   ORDER BY created_at {direction}, run_id {direction} LIMIT $9)",
                status.as_str()
            )
        })
        .collect();
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}
           FROM (SELECT run_id, created_at FROM ({}) merged
                  ORDER BY created_at {direction}, run_id {direction} LIMIT $9) page
           JOIN reprise.runs runs ON runs.run_id = page.run_id
          ORDER BY page.created_at {direction}, page.run_id {direction}",
        branches.join(" UNION ALL ")
    );
    let rows = bind_filter(
        sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false),
        filter,
    )?
    .bind(after.map(|c| to_datetime(c.created_at)).transpose()?)
    .bind(after.map(|c| *c.run_id.as_uuid()))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    let runs = rows.iter().map(summary).collect::<Result<Vec<_>>>()?;
    let next = match runs.last() {
        Some(last) if runs.len() as i64 == limit => Some(RunCursor::after(last)),
        _ => None,
    };
    Ok((runs, next))
}

impl Store {
    /// One page of runs, newest first, and the cursor of the next page if there may be one.
    pub(crate) async fn list(
        &self,
        filter: &RunFilter,
        after: Option<RunCursor>,
        limit: i64,
    ) -> Result<(Vec<RunSummary>, Option<RunCursor>)> {
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        list_in(&mut conn, filter, after, limit, Order::NewestFirst).await
    }

    /// How many runs of each status the filter matches, each counted up to `cap` (an index
    /// scan that stops there: a count of a million runs would read a million rows).
    pub(crate) async fn count_by_status(
        &self,
        filter: &RunFilter,
        cap: i64,
    ) -> Result<Vec<StatusCount>> {
        let statuses = filter.statuses();
        let counts: Vec<String> = statuses
            .iter()
            .map(|status| {
                format!(
                    "(SELECT count(*) FROM (SELECT 1 FROM reprise.runs
                        WHERE status = '{}' AND {FILTER_CONDITIONS} LIMIT $7 + 1) c)",
                    status.as_str()
                )
            })
            .collect();
        let sql = format!("SELECT ARRAY[{}]::bigint[]", counts.join(", "));
        let counts: Vec<i64> = bind_filter(
            sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false),
            filter,
        )?
        .bind(cap)
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?
        .try_get(0)
        .map_err(Error::from_db)?;
        Ok(statuses
            .into_iter()
            .zip(counts)
            .map(|(status, count)| StatusCount {
                status,
                count: u64::try_from(count.min(cap)).unwrap_or(0),
                more: count > cap,
            })
            .collect())
    }

    /// How many runs the filter matches, exactly.
    pub(crate) async fn count_matching(&self, filter: &RunFilter) -> Result<u64> {
        let statuses: Vec<&str> = filter
            .statuses()
            .into_iter()
            .map(RunState::as_str)
            .collect();
        let sql = format!(
            "SELECT count(*) FROM reprise.runs WHERE status = ANY($7) AND {FILTER_CONDITIONS}"
        );
        let count: i64 = bind_filter(
            sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false),
            filter,
        )?
        .bind(statuses)
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?
        .try_get(0)
        .map_err(Error::from_db)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// One run by its id, as listed.
    pub(crate) async fn run_summary(&self, run_id: RunId) -> Result<Option<RunSummary>> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM reprise.runs runs WHERE run_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id.as_uuid())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)?;
        row.as_ref().map(summary).transpose()
    }

    /// The runs `run_id` started as children (oldest first, up to `limit`), and the run
    /// that continues it, if one does.
    pub(crate) async fn run_relations(
        &self,
        run_id: RunId,
        limit: i64,
    ) -> Result<(Vec<RunSummary>, Option<RunId>)> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM reprise.runs runs WHERE parent_run_id = $1
              ORDER BY created_at, run_id LIMIT $2"
        );
        let children = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id.as_uuid())
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(Error::from_db)?
            .iter()
            .map(summary)
            .collect::<Result<Vec<_>>>()?;
        let next: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT run_id FROM reprise.runs WHERE previous_run_id = $1
              ORDER BY created_at DESC LIMIT 1",
        )
        .bind(run_id.as_uuid())
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok((children, next.map(RunId::from_uuid)))
    }

    /// Events `after + 1 ..= after + limit` of a run's history, their links checked against
    /// each other and the link before them (the whole chain is [`Store::verify_run`]'s).
    pub(crate) async fn history_page(
        &self,
        run_id: RunId,
        after: Seq,
        limit: i64,
        key: Option<&ChainKey>,
    ) -> Result<Vec<Event>> {
        // No history is that long; past this, `after + limit` would overflow in SQL.
        if after.get() >= u64::MAX / 4 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT seq, event, hash FROM reprise.history
              WHERE run_id = $1 AND seq >= $2 AND seq <= $2 + $3 ORDER BY seq",
        )
        .bind(run_id.as_uuid())
        .bind(seq_param(after))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        let mut links = links_from_rows(&rows)?;
        let prev = if after == Seq::new(0) {
            ChainHash::GENESIS
        } else {
            match links.first() {
                Some(first) if first.seq == after => links.remove(0).hash,
                // The event before the page is gone: past the end, or a gap.
                _ if links.is_empty() => return Ok(Vec::new()),
                _ => {
                    return Err(Error::Corrupt {
                        what: format!("history of run {run_id}"),
                        reason: format!("event {after} is missing"),
                    });
                }
            }
        };
        chain::verify_keyed_from(after, prev, links.iter().copied(), key)?;
        links
            .iter()
            .map(|l| Ok(Event::decode(l.bytes, self.limits())?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_matched_literally() {
        assert_eq!(like_prefix("order-1"), "order-1%");
        assert_eq!(like_prefix("50%_off\\"), "50\\%\\_off\\\\%");
    }

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        let cursor = RunCursor {
            created_at: Timestamp::from_unix_micros(1_764_000_000_123_456),
            run_id: RunId::from_uuid(uuid::Uuid::from_u128(7)),
        };
        assert_eq!(RunCursor::parse(&cursor.token()).ok(), Some(cursor));
        for bad in [
            "",
            "12",
            "x_00000000-0000-0000-0000-000000000007",
            "1_not-a-uuid",
        ] {
            assert!(RunCursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_cursor_or_an_error(token in "\\PC{0,60}") {
            let _ = RunCursor::parse(&token);
        }

        #[test]
        fn every_cursor_reads_back(micros in proptest::num::i64::ANY, id in proptest::num::u128::ANY) {
            let cursor = RunCursor {
                created_at: Timestamp::from_unix_micros(micros),
                run_id: RunId::from_uuid(uuid::Uuid::from_u128(id)),
            };
            proptest::prop_assert_eq!(RunCursor::parse(&cursor.token()).ok(), Some(cursor));
        }
    }

    #[test]
    fn parked_runs_are_looked_for_among_open_ones() {
        let parked = RunFilter {
            parked: true,
            ..RunFilter::default()
        };
        assert_eq!(parked.statuses(), vec![RunState::Running]);
        assert_eq!(RunFilter::default().statuses().len(), RunState::ALL.len());
    }
}
