//! The schema: migrations apply once, under a lock, and the database itself protects history.

use reprise_engine::schema;
use sqlx::{PgPool, Row};

use crate::support::TestDb;

const RUN: &str = "00000000-0000-4000-8000-000000000001";

async fn insert_run(pool: &PgPool, run_id: &str, workflow_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reprise.runs (run_id, workflow_id, workflow_type, task_queue, head_seq, head_hash)
         VALUES ($1::uuid, $2, 'demo', 'default', 1, $3)",
    )
    .bind(run_id)
    .bind(workflow_id)
    .bind(vec![0u8; 32])
    .execute(pool)
    .await
    .map(|_| ())
}

async fn insert_event(pool: &PgPool, run_id: &str, seq: i64) {
    sqlx::query(
        "INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         VALUES ($1::uuid, $2, now(), 'WorkflowStarted', '\\x01'::bytea, $3)",
    )
    .bind(run_id)
    .bind(seq)
    .bind(vec![7u8; 32])
    .execute(pool)
    .await
    .expect("insert history row");
}

async fn close_run(pool: &PgPool, run_id: &str) {
    sqlx::query(
        "UPDATE reprise.runs SET status = 'completed', closed_at = now() WHERE run_id = $1::uuid",
    )
    .bind(run_id)
    .execute(pool)
    .await
    .expect("close run");
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.to_string())
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let db = TestDb::empty().await;
    assert_eq!(schema::schema_version(&db.pool).await.unwrap(), None);
    let first = schema::migrate(&db.pool).await.unwrap();
    assert_eq!(first, schema::expected_version());
    let second = schema::migrate(&db.pool).await.unwrap();
    assert_eq!(second, first);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM reprise._migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        applied,
        schema::expected_version(),
        "each migration recorded once"
    );
    // Our bookkeeping stays in our schema: an application's own sqlx migrations are untouched.
    let public: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(!public);
    db.drop_database().await;
}

#[tokio::test]
async fn concurrent_migrations_in_one_process_serialize() {
    let db = TestDb::empty().await;
    let other = db.second_pool().await;
    let (a, b) = tokio::join!(schema::migrate(&db.pool), schema::migrate(&other));
    assert_eq!(a.unwrap(), schema::expected_version());
    assert_eq!(b.unwrap(), schema::expected_version());
    other.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_history() {
    let db = TestDb::migrated().await;
    insert_run(&db.pool, RUN, "wf-1").await.unwrap();
    insert_event(&db.pool, RUN, 1).await;

    let update = sqlx::query("UPDATE reprise.history SET kind = 'Edited' WHERE run_id = $1::uuid")
        .bind(RUN)
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&update).as_deref(), Some("RH001"), "{update}");
    assert!(update.to_string().contains("append-only"), "{update}");

    let delete = sqlx::query("DELETE FROM reprise.history")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&delete).as_deref(), Some("RH001"), "{delete}");

    let truncate = sqlx::query("TRUNCATE reprise.history CASCADE")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&truncate).as_deref(), Some("RH001"), "{truncate}");

    // Retention may not delete an open run's history either.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL reprise.retention = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let open = sqlx::query("DELETE FROM reprise.history WHERE run_id = $1::uuid")
        .bind(RUN)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&open).as_deref(), Some("RH001"), "{open}");
    tx.rollback().await.unwrap();

    let kind: String =
        sqlx::query_scalar("SELECT kind FROM reprise.history WHERE run_id = $1::uuid")
            .bind(RUN)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(kind, "WorkflowStarted", "the row is unchanged");
    db.drop_database().await;
}

#[tokio::test]
async fn retention_deletes_the_history_of_a_closed_run() {
    let db = TestDb::migrated().await;
    insert_run(&db.pool, RUN, "wf-1").await.unwrap();
    insert_event(&db.pool, RUN, 1).await;
    insert_event(&db.pool, RUN, 2).await;
    close_run(&db.pool, RUN).await;

    // Without the retention setting, even a closed run's history stays.
    assert!(
        sqlx::query("DELETE FROM reprise.history")
            .execute(&db.pool)
            .await
            .is_err()
    );

    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL reprise.retention = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let deleted = sqlx::query("DELETE FROM reprise.history WHERE run_id = $1::uuid")
        .bind(RUN)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 2);
    tx.commit().await.unwrap();

    // The setting was local to that transaction.
    insert_event(&db.pool, RUN, 3).await;
    assert!(
        sqlx::query("DELETE FROM reprise.history")
            .execute(&db.pool)
            .await
            .is_err()
    );
    db.drop_database().await;
}

#[tokio::test]
async fn one_open_run_per_workflow_id() {
    let db = TestDb::migrated().await;
    insert_run(&db.pool, RUN, "order-7").await.unwrap();
    let second = "00000000-0000-4000-8000-000000000002";
    let dup = insert_run(&db.pool, second, "order-7").await.unwrap_err();
    assert_eq!(sqlstate(&dup).as_deref(), Some("23505"), "{dup}");
    // Once the first run closes, the id may be used again.
    close_run(&db.pool, RUN).await;
    insert_run(&db.pool, second, "order-7").await.unwrap();
    db.drop_database().await;
}

/// The plan PostgreSQL picks for `sql` when sequential scans are off: proves that an index
/// serves the query (on tiny test tables the planner would otherwise prefer a scan).
async fn plan(pool: &PgPool, sql: &str) -> String {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each index serves the lookup it exists for: a check of the schema. The store's own
/// statements, with their real parameters and generic plans, are checked in `plans.rs`
/// (`hot_statements_read_every_table_by_key_before_and_after_statistics`); this test covers
/// the indexes that operator reads (describe, list, retention) depend on too.
#[tokio::test]
async fn every_claim_and_lookup_path_has_an_index() {
    let db = TestDb::migrated().await;
    let paths = [
        (
            "ready_runs_by_time",
            "SELECT run_id FROM reprise.ready_runs WHERE ready_at <= now() ORDER BY ready_at LIMIT 10",
        ),
        (
            "activity_cache_pkey",
            "SELECT result FROM reprise.activity_cache
             WHERE activity_type = 'stats' AND cache_key = '\\x00'::bytea AND expires_at > now()",
        ),
        (
            "activity_cache_expiry",
            "SELECT cache_key FROM reprise.activity_cache
             WHERE activity_type = 'stats' AND expires_at <= now() LIMIT 100",
        ),
        (
            "runs_one_open_run_per_workflow_id",
            "SELECT run_id FROM reprise.runs WHERE workflow_id = 'x' AND status = 'running'",
        ),
        (
            "runs_by_workflow_id",
            "SELECT run_id FROM reprise.runs WHERE workflow_id = 'x' ORDER BY created_at DESC LIMIT 1",
        ),
        (
            "runs_by_status",
            "SELECT run_id FROM reprise.runs WHERE status = 'failed'
             AND (created_at, run_id) < (now(), '00000000-0000-0000-0000-000000000000'::uuid)
             ORDER BY created_at DESC, run_id DESC LIMIT 50",
        ),
        (
            "runs_parked",
            "SELECT run_id FROM reprise.runs WHERE parked_reason IS NOT NULL ORDER BY parked_at LIMIT 50",
        ),
        (
            "runs_by_parent",
            "SELECT run_id FROM reprise.runs WHERE parent_run_id = '00000000-0000-0000-0000-000000000000'::uuid",
        ),
        (
            "runs_by_previous_run",
            "SELECT run_id FROM reprise.runs WHERE previous_run_id = '00000000-0000-0000-0000-000000000000'::uuid LIMIT 1",
        ),
        (
            "runs_closed",
            "SELECT run_id FROM reprise.runs WHERE closed_at < now() - interval '30 days'
             ORDER BY closed_at LIMIT 500",
        ),
        (
            "history_pkey",
            "SELECT event FROM reprise.history WHERE run_id = '00000000-0000-0000-0000-000000000000'::uuid
             AND seq > 10 ORDER BY seq",
        ),
        (
            "inbox_by_run",
            "SELECT id, event FROM reprise.inbox WHERE run_id = '00000000-0000-0000-0000-000000000000'::uuid
             AND visible_at <= now() ORDER BY visible_at, id",
        ),
        (
            "inbox_run_id_dedupe_key_key",
            "SELECT id FROM reprise.inbox WHERE run_id = '00000000-0000-0000-0000-000000000000'::uuid
             AND dedupe_key = 'timer:3'",
        ),
        (
            "activity_tasks_claimable",
            "SELECT run_id, scheduled_seq FROM reprise.activity_tasks
             WHERE task_queue = ANY ('{default}') AND visible_at <= now() AND lease_owner IS NULL
               AND fairness_key IS NULL AND activity_type = ANY ('{greet}')
             ORDER BY priority DESC, visible_at LIMIT 32 FOR UPDATE SKIP LOCKED",
        ),
        (
            "activity_tasks_claimable_by_type",
            "SELECT run_id, scheduled_seq FROM reprise.activity_tasks
             WHERE task_queue = 'default' AND activity_type = 'charge-card'
               AND lease_owner IS NULL AND fairness_key IS NULL AND visible_at <= now()
             ORDER BY priority DESC, visible_at LIMIT 32",
        ),
        (
            "activity_tasks_claimable_by_key",
            "SELECT run_id, scheduled_seq FROM reprise.activity_tasks
             WHERE task_queue = 'default' AND fairness_key = 'tenant-1' AND lease_owner IS NULL
               AND visible_at <= now()
             ORDER BY priority DESC, visible_at LIMIT 32",
        ),
        (
            "activity_tasks_lease_expiry",
            "SELECT count(*) FROM reprise.activity_tasks
             WHERE task_queue = 'default' AND lease_owner IS NOT NULL",
        ),
        (
            "activity_tasks_lease_expiry",
            "SELECT count(*) FROM reprise.activity_tasks
             WHERE activity_type = 'charge-card' AND lease_owner IS NOT NULL",
        ),
        (
            "task_limits_pkey",
            "SELECT * FROM reprise.task_limits
             WHERE (scope = 'queue' AND name = ANY ('{default}'))
                OR (scope = 'activity_type' AND name = ANY ('{greet}'))",
        ),
        (
            "activity_tasks_lease_expiry",
            "SELECT run_id, scheduled_seq FROM reprise.activity_tasks
             WHERE lease_owner IS NOT NULL AND lease_expires_at < now() LIMIT 32 FOR UPDATE SKIP LOCKED",
        ),
        (
            "activity_tasks_deadline",
            "SELECT run_id FROM reprise.activity_tasks WHERE schedule_to_close_deadline < now() LIMIT 32",
        ),
        (
            "activity_tasks_start_deadline",
            "SELECT run_id FROM reprise.activity_tasks
             WHERE lease_owner IS NULL AND start_deadline < now() LIMIT 32",
        ),
        (
            "runs_deadlines",
            "SELECT run_id FROM reprise.runs
             WHERE status = 'running' AND deadline <= now()
             ORDER BY deadline LIMIT 64 FOR UPDATE SKIP LOCKED",
        ),
        (
            "runs_deadlines",
            "SELECT min(deadline) FROM reprise.runs WHERE status = 'running' AND deadline IS NOT NULL",
        ),
        (
            "activity_tasks_pkey",
            "SELECT attempt FROM reprise.activity_tasks
             WHERE run_id = '00000000-0000-0000-0000-000000000000'::uuid AND scheduled_seq = 4",
        ),
        (
            "schedules_due",
            "SELECT schedule_id FROM reprise.schedules WHERE NOT paused AND next_fire_at <= now()
             ORDER BY next_fire_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        ),
        (
            "schedules_due",
            "SELECT min(next_fire_at) FROM reprise.schedules WHERE NOT paused",
        ),
        (
            "schedules_waiting",
            "SELECT schedule_id FROM reprise.schedules s
             WHERE waiting_on IS NOT NULL AND NOT paused
               AND NOT EXISTS (SELECT 1 FROM reprise.runs r
                                WHERE r.workflow_id = s.waiting_on AND r.status = 'running')
             LIMIT 1 FOR UPDATE SKIP LOCKED",
        ),
    ];
    for (index, sql) in paths {
        let plan = plan(&db.pool, sql).await;
        assert!(
            plan.contains(index),
            "expected index {index} for\n{sql}\nplan:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan"),
            "sequential scan for\n{sql}\nplan:\n{plan}"
        );
    }
    db.drop_database().await;
}

/// The priority checks are added NOT VALID (no scan of existing rows at migration), and still
/// hold for every row written afterwards.
#[tokio::test]
async fn priorities_outside_one_to_nine_are_refused_by_the_schema() {
    let db = TestDb::migrated().await;
    let run = "00000000-0000-4000-8000-000000000009";
    insert_run(&db.pool, run, "prioritised").await.unwrap();
    for (priority, accepted) in [(1i16, true), (9, true), (0, false), (10, false)] {
        let updated = sqlx::query("UPDATE reprise.runs SET priority = $1 WHERE run_id = $2::uuid")
            .bind(priority)
            .bind(run)
            .execute(&db.pool)
            .await;
        assert_eq!(updated.is_ok(), accepted, "runs: {priority}");
        let inserted = sqlx::query(
            "INSERT INTO reprise.activity_tasks
                    (run_id, scheduled_seq, task_queue, activity_type, input, options, priority)
             VALUES ($1::uuid, $2, 'default', 'charge', '\\x01', '\\x01', $3)",
        )
        .bind(run)
        .bind(i64::from(priority) + 100)
        .bind(priority)
        .execute(&db.pool)
        .await;
        assert_eq!(inserted.is_ok(), accepted, "tasks: {priority}");
    }
    db.drop_database().await;
}
