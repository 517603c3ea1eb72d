//! The plans PostgreSQL makes for the statements on every step's path reach each table by
//! key, whatever the tables' statistics say. The loops keep one generic plan per statement
//! for as long as their connection lives, so a plan made while the tables were empty (a fresh
//! install, statistics not yet gathered) must still be right once they hold millions of rows.

use reprise_engine::hot_path::{LOOP_SESSION_SETTINGS, bound_statements, hot_statements};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, Row};

use crate::support::TestDb;

/// How a plan node reads one of Reprise's tables in a way that grows with the table, if it
/// does: a sequential scan, or an index read from end to end (no `Index Cond`).
fn unkeyed_read(node: &Value) -> Option<String> {
    let kind = node["Node Type"].as_str()?;
    let relation = node["Relation Name"].as_str().unwrap_or("");
    let index = node["Index Name"].as_str().unwrap_or("");
    let keyed = node.get("Index Cond").is_some();
    match kind {
        "Seq Scan" if !relation.starts_with('_') => Some(format!("sequential scan of {relation}")),
        "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" if !keyed => {
            Some(format!("{kind} of all of {index}"))
        }
        _ => None,
    }
}

fn unkeyed_reads(node: &Value, found: &mut Vec<String>) {
    found.extend(unkeyed_read(node));
    for child in node["Plans"].as_array().into_iter().flatten() {
        unkeyed_reads(child, found);
    }
}

/// The highest `$n` a statement uses.
fn parameter_count(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Each hot statement's generic plan on a loop's connection, with what it reads unkeyed.
async fn unkeyed_reads_of_hot_statements(db: &TestDb) -> Vec<(String, Vec<String>)> {
    let options: PgConnectOptions = db.url.parse().unwrap();
    let mut conn = PgConnection::connect_with(&options.options(LOOP_SESSION_SETTINGS))
        .await
        .unwrap();
    let mut report = Vec::new();
    for (name, sql) in hot_statements() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE hot AS {sql}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{name} prepares: {e}"));
        let nulls = vec!["NULL"; parameter_count(sql)].join(", ");
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (FORMAT JSON) EXECUTE hot({nulls})"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{name} explains: {e}"));
        let text: String = row.try_get_unchecked(0).unwrap();
        let plan: Value = serde_json::from_str(&text).unwrap();
        let mut found = Vec::new();
        unkeyed_reads(&plan[0]["Plan"], &mut found);
        report.push((name.to_string(), found));
        sqlx::raw_sql("DEALLOCATE hot")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    report
}

/// Twenty thousand runs, most closed, with their events, a queue, an inbox and tasks both
/// waiting and leased, then fresh statistics: a production database, roughly.
const LOTS_OF_RUNS: &str = "
    INSERT INTO reprise.runs (run_id, workflow_id, workflow_type, task_queue, status, closed_at,
                              head_seq, head_hash, parent_run_id)
    SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'wf-' || g, 'demo',
           'default', CASE WHEN g % 10 = 0 THEN 'running' ELSE 'completed' END,
           CASE WHEN g % 10 = 0 THEN NULL ELSE now() END, 4, decode(repeat('00', 32), 'hex'),
           CASE WHEN g % 100 = 1 THEN '00000000-0000-4000-8000-000000000001'::uuid END
      FROM generate_series(1, 20000) g;
    INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
    SELECT r.run_id, s, now(), 'WorkflowStarted', '\\x01', decode(repeat('00', 32), 'hex')
      FROM reprise.runs r, generate_series(1, 4) s;
    INSERT INTO reprise.ready_runs (run_id, ready_at)
    SELECT run_id, now() + interval '1 hour' FROM reprise.runs WHERE status = 'running';
    INSERT INTO reprise.inbox (run_id, kind, event, dedupe_key)
    SELECT run_id, 'TimerFired', '\\x01', 'timer:2' FROM reprise.runs WHERE status = 'running';
    INSERT INTO reprise.activity_tasks (run_id, scheduled_seq, task_queue, activity_type, input,
                                        options, lease_owner, lease_expires_at)
    SELECT run_id, s, 'default', 'demo', '\\x01', '\\x01',
           CASE WHEN s = 2 THEN 'worker' END, CASE WHEN s = 2 THEN now() END
      FROM reprise.runs, generate_series(2, 3) s WHERE status = 'running';
    ANALYZE;
";

#[tokio::test]
async fn hot_statements_read_every_table_by_key_before_and_after_statistics() {
    let db = TestDb::migrated().await;
    let never_analyzed = unkeyed_reads_of_hot_statements(&db).await;
    sqlx::query("ANALYZE").execute(&db.pool).await.unwrap();
    let analyzed_empty = unkeyed_reads_of_hot_statements(&db).await;
    sqlx::raw_sql(LOTS_OF_RUNS).execute(&db.pool).await.unwrap();
    let analyzed_full = unkeyed_reads_of_hot_statements(&db).await;
    db.drop_database().await;
    assert_eq!(never_analyzed.len(), hot_statements().len());
    let mut failures = Vec::new();
    for (state, report) in [
        ("never analyzed", never_analyzed),
        ("analyzed while empty", analyzed_empty),
        ("analyzed with 20,000 runs", analyzed_full),
    ] {
        for (name, found) in report {
            if !found.is_empty() {
                failures.push(format!("{state}: `{name}` reads without a key: {found:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unkeyed_reads_are_found_in_nested_plans() {
    let plan = serde_json::json!({
        "Node Type": "Nested Loop",
        "Plans": [
            {"Node Type": "Index Scan", "Index Name": "runs_pkey", "Relation Name": "runs",
             "Index Cond": "(run_id = $1)"},
            {"Node Type": "Index Scan", "Index Name": "activity_tasks_claimable",
             "Relation Name": "activity_tasks"},
            {"Node Type": "Seq Scan", "Relation Name": "inbox"},
        ]
    });
    let mut found = Vec::new();
    unkeyed_reads(&plan, &mut found);
    assert_eq!(
        found,
        [
            "Index Scan of all of activity_tasks_claimable",
            "sequential scan of inbox"
        ]
    );
    assert_eq!(parameter_count("SELECT $1, $12, $3::int"), 12);
}

/// Each statement's binder binds exactly the parameters the statement has, each of the type
/// PostgreSQL infers for it: a binder that binds one too many, one too few, or one of another
/// type fails here, not in production.
#[tokio::test]
async fn every_binder_binds_what_its_statement_takes() {
    let db = TestDb::migrated().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let mut failures = Vec::new();
    let statements = bound_statements();
    assert!(statements.len() >= 12, "{} statements", statements.len());
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PREPARE bound AS {}",
            statement.sql
        )))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{} prepares: {e}", statement.name));
        let inferred: Vec<sqlx::postgres::types::Oid> = sqlx::query_scalar(
            "SELECT parameter_types::oid[] FROM pg_prepared_statements WHERE name = 'bound'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let inferred: Vec<Option<u32>> = inferred.into_iter().map(|o| Some(o.0)).collect();
        if inferred != statement.parameter_oids {
            failures.push(format!(
                "`{}` takes parameters of types {inferred:?}; its binder binds {:?}",
                statement.name, statement.parameter_oids
            ));
        }
        sqlx::raw_sql("DEALLOCATE bound")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);
    db.drop_database().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
