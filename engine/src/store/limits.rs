//! Fleet-wide limits on activity attempts (`reprise.task_limits`) as operators set and read
//! them, and the workers' announcements of what they serve (`reprise.workers`). Claims apply
//! the limits in `reprise.claim_tasks` (migrations/0006_flow_control.sql).

use sqlx::Row;

use crate::error::{Error, Result};
use crate::flow_control::{Limit, LimitScope, LimitUsage, Rate};
use crate::store::{Store, TASKS_CHANNEL};

impl Store {
    /// Sets the limit of a scope, replacing any it had, and wakes workers (a raised limit
    /// frees room at once). A new rate starts with a full bucket; a changed one keeps the
    /// tokens it holds, up to the new burst. A scope nobody serves (no worker announced the
    /// queue or activity type, and no task has it) is refused: it is most likely a typo.
    pub(crate) async fn set_limit(&self, scope: &LimitScope, limit: &Limit) -> Result<()> {
        limit.check()?;
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let known: bool = sqlx::query_scalar(
            "SELECT CASE WHEN $1 = 'queue'
                    THEN EXISTS (SELECT 1 FROM reprise.workers WHERE $2 = ANY (queues))
                      OR EXISTS (SELECT 1 FROM reprise.activity_tasks WHERE task_queue = $2)
                    ELSE EXISTS (SELECT 1 FROM reprise.workers WHERE $2 = ANY (activity_types))
                      OR EXISTS (SELECT 1 FROM reprise.activity_tasks WHERE activity_type = $2)
                    END",
        )
        .bind(scope.kind())
        .bind(scope.name())
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        if !known {
            return Err(Error::InvalidArgument(format!(
                "no worker serves {scope} and no task has it: check the name (a worker \
                 announces its queues and activity types when it starts)"
            )));
        }
        let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        sqlx::query(
            "INSERT INTO reprise.task_limits
                    (scope, name, max_concurrent, rate_per_second, burst, tokens, refilled_at)
             VALUES ($2, $3, $4, $5, $6, COALESCE($6, 0), reprise.db_now($1))
             ON CONFLICT (scope, name) DO UPDATE
                SET max_concurrent = EXCLUDED.max_concurrent,
                    rate_per_second = EXCLUDED.rate_per_second, burst = EXCLUDED.burst,
                    tokens = CASE WHEN task_limits.rate_per_second IS NULL THEN EXCLUDED.tokens
                                  ELSE LEAST(task_limits.tokens, COALESCE($6, 0)) END,
                    updated_at = now()",
        )
        .bind(self.offset())
        .bind(scope.kind())
        .bind(scope.name())
        .bind(limit.max_concurrent.map(to_i32))
        .bind(limit.rate.map(|r| r.per_second))
        .bind(limit.rate.map(|r| to_i32(r.burst)))
        .execute(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        crate::store::notify(&mut tx, TASKS_CHANNEL, "").await?;
        tx.commit().await.map_err(Error::from_db)
    }

    /// Removes the limit of a scope; false if it had none.
    pub(crate) async fn clear_limit(&self, scope: &LimitScope) -> Result<bool> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let removed = sqlx::query("DELETE FROM reprise.task_limits WHERE scope = $1 AND name = $2")
            .bind(scope.kind())
            .bind(scope.name())
            .execute(&mut *tx)
            .await
            .map_err(Error::from_db)?
            .rows_affected();
        crate::store::notify(&mut tx, TASKS_CHANNEL, "").await?;
        tx.commit().await.map_err(Error::from_db)?;
        Ok(removed > 0)
    }

    /// Every limit, by scope, with the attempts it counts running and waiting now and the
    /// tokens its bucket holds now.
    pub(crate) async fn task_limits(&self) -> Result<Vec<LimitUsage>> {
        let rows = sqlx::query(
            "SELECT l.scope, l.name, l.max_concurrent, l.rate_per_second, l.burst,
                    CASE WHEN l.rate_per_second IS NOT NULL THEN
                         LEAST(l.burst::float8, l.tokens + l.rate_per_second * GREATEST(0,
                               EXTRACT(EPOCH FROM reprise.db_now($1) - l.refilled_at))) END
                         AS tokens,
                    u.running, u.waiting
               FROM reprise.task_limits l CROSS JOIN LATERAL (
                    SELECT count(*) FILTER (WHERE t.lease_owner IS NOT NULL) AS running,
                           count(*) FILTER (WHERE t.lease_owner IS NULL
                                            AND t.visible_at <= reprise.db_now($1)) AS waiting
                      FROM reprise.activity_tasks t
                     WHERE CASE WHEN l.scope = 'queue' THEN t.task_queue = l.name
                                ELSE t.activity_type = l.name END) u
              ORDER BY l.scope, l.name",
        )
        .bind(self.offset())
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter().map(usage_from_row).collect()
    }

    /// Records what a worker serves, so that limits can be checked against it.
    pub(crate) async fn announce_worker(
        &self,
        owner: &str,
        queues: &[String],
        activity_types: &[String],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO reprise.workers (owner, queues, activity_types) VALUES ($1, $2, $3)
             ON CONFLICT (owner) DO UPDATE
                SET queues = EXCLUDED.queues, activity_types = EXCLUDED.activity_types",
        )
        .bind(owner)
        .bind(queues)
        .bind(activity_types)
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// Forgets a worker that stopped.
    pub(crate) async fn retire_worker(&self, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM reprise.workers WHERE owner = $1")
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }
}

fn usage_from_row(row: &sqlx::postgres::PgRow) -> Result<LimitUsage> {
    let get_err = Error::from_db;
    let kind: String = row.try_get("scope").map_err(get_err)?;
    let name: String = row.try_get("name").map_err(get_err)?;
    let max_concurrent: Option<i32> = row.try_get("max_concurrent").map_err(get_err)?;
    let per_second: Option<f64> = row.try_get("rate_per_second").map_err(get_err)?;
    let burst: Option<i32> = row.try_get("burst").map_err(get_err)?;
    let running: i64 = row.try_get("running").map_err(get_err)?;
    let waiting: i64 = row.try_get("waiting").map_err(get_err)?;
    let corrupt = |reason: String| Error::Corrupt {
        what: format!("limit of {kind} {name}"),
        reason,
    };
    let max_concurrent = max_concurrent
        .map(|m| u32::try_from(m).map_err(|_| corrupt(format!("max_concurrent {m}"))))
        .transpose()?;
    let rate = match (per_second, burst) {
        (Some(per_second), Some(burst)) => Some(Rate {
            per_second,
            burst: u32::try_from(burst).map_err(|_| corrupt(format!("burst {burst}")))?,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt(
                "a rate without a burst, or a burst without a rate".into(),
            ));
        }
    };
    Ok(LimitUsage {
        scope: LimitScope::from_stored(&kind, name.clone())?,
        limit: Limit {
            max_concurrent,
            rate,
        },
        running: u64::try_from(running).unwrap_or(0),
        waiting: u64::try_from(waiting).unwrap_or(0),
        tokens: row.try_get("tokens").map_err(get_err)?,
    })
}
