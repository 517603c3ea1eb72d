//! Least-privilege roles (migration 0012): each kind of process runs under its own role with
//! what its statements need, and PostgreSQL refuses each role what it must not do.
//!
//! The test logs in as the database's owner and takes each role with the `role` startup
//! setting, as a login role that is a member of it would be.

use std::time::Duration;

use reprise_engine::{Client, EngineOptions, Limit, LimitScope, RunFilter, Store, WorkerOptions};
use reprise_history::RunState;
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, QueryDef, Registry, SignalDef, UpdateDef,
    WorkflowContext, WorkflowDef, WorkflowError, WorkflowState,
};
use sqlx::PgPool;

use crate::engine::within;
use crate::hosts::{Running, run_engine, run_worker};
use crate::support::TestDb;

/// Fails its first attempt, heartbeats, then doubles its input.
const WORK: ActivityDef<u32, u32> = ActivityDef::new("work");
const GO: SignalDef<u32> = SignalDef::new("go");
const TOTAL: QueryDef<(), u32> = QueryDef::new("total");
const ADD: UpdateDef<u32, u32> = UpdateDef::new("add");
/// Runs [`WORK`] and answers with it.
const LEAF: WorkflowDef<u32, u32> = WorkflowDef::new("leaf");
/// An activity that is retried, a timer, a child, a signal, a query, an update and one
/// continue-as-new: every kind of row each process writes.
const TREE: WorkflowDef<u32, u32> = WorkflowDef::new("tree");

async fn leaf(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    Ok(ctx.activity(WORK, &n).await?)
}

async fn tree(ctx: WorkflowContext, round: u32) -> Result<u32, WorkflowError> {
    let total = WorkflowState::new(0u32);
    ctx.on_query(TOTAL, &total, |total, ()| *total);
    let adding = total.clone();
    ctx.on_update(ADD, move |ctx, n: u32| {
        let adding = adding.clone();
        async move {
            let worked = ctx.activity(WORK, &n).await?;
            Ok(adding.update(|t| {
                *t += worked;
                *t
            }))
        }
    });
    let worked = ctx.activity(WORK, &1).await?;
    total.update(|t| *t += worked);
    ctx.sleep(Duration::from_millis(10)).await?;
    let child = ctx
        .child(LEAF, &format!("{}-leaf-{round}", ctx.workflow_id()), &3)
        .await?;
    total.update(|t| *t += child);
    let said = ctx.signal(GO).await?;
    total.update(|t| *t += said);
    if round == 0 {
        return Err(ctx.continue_as_new(&1)?);
    }
    Ok(total.get())
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(TREE, tree)
        .workflow(LEAF, leaf)
        .activity(WORK, |ctx: ActivityContext, n: u32| async move {
            ctx.heartbeat(&n)?;
            if ctx.attempt() == 1 {
                return Err(ActivityError::retryable("Flaky", "the first try fails"));
            }
            Ok(n * 2)
        })
        .build()
        .unwrap()
}

/// A pool on the test's database under `role`.
async fn pool_as(db: &TestDb, role: &str) -> PgPool {
    reprise_engine::pool_options()
        .max_connections(6)
        .connect_with(db.options().options([("role", role)]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_process_runs_a_whole_workload_under_its_own_role() {
    let db = TestDb::migrated().await;
    let engine_store = Store::new(pool_as(&db, "reprise_engine").await);
    let worker_store = Store::new(pool_as(&db, "reprise_worker").await);
    let operator = Client::new(Store::new(pool_as(&db, "reprise_operator").await));
    let observer = Client::new(Store::new(pool_as(&db, "reprise_observer").await));

    let mut running = Running::new();
    run_engine(
        &engine_store,
        registry(),
        EngineOptions {
            idle_poll: Duration::from_millis(50),
            ..EngineOptions::default()
        },
        &mut running,
    );
    run_worker(
        &worker_store,
        registry(),
        WorkerOptions {
            idle_poll: Duration::from_millis(50),
            heartbeat_interval: Duration::from_millis(20),
            ..WorkerOptions::default()
        },
        &mut running,
    );

    // A limit on the queue (once the worker announced it): claims go through
    // `reprise.claim_tasks`.
    within(async {
        let limit = Limit {
            max_concurrent: Some(8),
            rate: None,
        };
        while operator
            .set_limit(LimitScope::Queue("default".into()), limit)
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let handle = operator.start(TREE, "tree-1", &0).await.unwrap();
    for round in 0..2 {
        // Waiting for the signal (in the run that continued, the second time): a query and an
        // update meanwhile.
        within(running.until(async || {
            let current = observer.describe("tree-1").await.unwrap().run_id;
            (round == 0 || current != handle.run_id())
                && operator
                    .query("tree-1", TOTAL, &())
                    .await
                    .is_ok_and(|t| t == 8)
        }))
        .await;
        let added = within(operator.update("tree-1", ADD, &5)).await.unwrap();
        assert_eq!(added, 18);
        operator.signal("tree-1", GO, &100).await.unwrap();
    }
    let total = within(handle.result()).await.unwrap();
    assert_eq!(total, 2 + 6 + 10 + 100);

    // What an observer reads.
    let described = observer.describe("tree-1").await.unwrap();
    assert_eq!(described.status, RunState::Completed);
    let page = observer
        .list(&RunFilter::default(), None, 50)
        .await
        .unwrap();
    assert!(page.runs.len() >= 4, "{page:?}");
    observer.export(described.run_id).await.unwrap();

    // A termination (with a child to end), a reset and retention, by the operator.
    let second = operator.start(TREE, "tree-2", &0).await.unwrap();
    within(running.until(async || {
        operator
            .query("tree-2", TOTAL, &())
            .await
            .is_ok_and(|t| t >= 8)
    }))
    .await;
    operator.terminate("tree-2", "enough").await.unwrap();
    assert!(matches!(
        within(second.result()).await,
        Err(reprise_engine::Error::WorkflowEnded {
            status: RunState::Terminated,
            ..
        })
    ));
    let reset = operator.reset("tree-2", 4).await.unwrap();
    let again = operator.handle(TREE, "tree-2").await.unwrap();
    assert_eq!(again.run_id(), reset);
    operator.terminate("tree-2", "enough again").await.unwrap();
    let pruned = operator.prune(Duration::ZERO).await.unwrap();
    assert!(pruned >= 4, "{pruned}");
    running.stop().await;
    db.drop_database().await;
}

/// What `role` must not do: each statement is refused by PostgreSQL with the SQLSTATE given
/// (42501: insufficient privilege).
async fn refused(db: &TestDb, role: &str, statements: &[(&str, &str)]) {
    let pool = pool_as(db, role).await;
    for (statement, code) in statements {
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
            .execute(&pool)
            .await;
        let refused_with = result
            .as_ref()
            .err()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code().map(|c| c.to_string()));
        assert_eq!(
            refused_with.as_deref(),
            Some(*code),
            "{role}: {statement} → {result:?}"
        );
    }
    pool.close().await;
}

#[tokio::test]
async fn each_role_is_refused_what_it_must_not_do() {
    let db = TestDb::migrated().await;
    const DENIED: &str = "42501";
    let everyone = [
        (
            "INSERT INTO reprise._migrations (version, description, success, checksum, execution_time) VALUES (999, 'x', true, '\\x00', 0)",
            DENIED,
        ),
        ("CREATE TABLE reprise.intruder (x int)", DENIED),
        ("DROP TABLE reprise.history", DENIED),
        (
            "ALTER TABLE reprise.history DISABLE TRIGGER history_is_append_only",
            DENIED,
        ),
        ("UPDATE reprise.history SET event = '\\x00'", DENIED),
    ];
    let worker = [
        ("SELECT * FROM reprise.history", DENIED),
        (
            "INSERT INTO reprise.history SELECT * FROM reprise.history",
            DENIED,
        ),
        (
            "SET reprise.retention = 'on'; DELETE FROM reprise.history",
            DENIED,
        ),
        ("SELECT event FROM reprise.inbox", DENIED),
        ("SELECT custom_status FROM reprise.runs", DENIED),
        ("UPDATE reprise.runs SET status = 'completed'", DENIED),
        ("UPDATE reprise.activity_tasks SET input = '\\x00'", DENIED),
        (
            "UPDATE reprise.activity_tasks SET cancel_requested = true",
            DENIED,
        ),
        (
            "INSERT INTO reprise.activity_tasks SELECT * FROM reprise.activity_tasks",
            DENIED,
        ),
        ("DELETE FROM reprise.inbox", DENIED),
        (
            "UPDATE reprise.task_limits SET max_concurrent = 1000",
            DENIED,
        ),
        ("SELECT * FROM reprise.schedules", DENIED),
        ("SELECT * FROM reprise.updates", DENIED),
        ("SELECT reprise.prune_closed_runs(0, 0, 10)", DENIED),
    ];
    let observer = [
        ("UPDATE reprise.runs SET status = 'completed'", DENIED),
        ("SELECT run_id FROM reprise.runs FOR UPDATE", DENIED),
        (
            "INSERT INTO reprise.history SELECT * FROM reprise.history",
            DENIED,
        ),
        ("DELETE FROM reprise.history", DENIED),
        (
            "SET reprise.retention = 'on'; DELETE FROM reprise.history",
            DENIED,
        ),
        ("SELECT * FROM reprise.inbox", DENIED),
        ("DELETE FROM reprise.activity_tasks", DENIED),
        ("UPDATE reprise.schedules SET paused = true", DENIED),
        (
            "INSERT INTO reprise.queries SELECT * FROM reprise.queries",
            DENIED,
        ),
        ("DELETE FROM reprise.task_limits", DENIED),
        ("SELECT reprise.prune_closed_runs(0, 0, 10)", DENIED),
        ("SELECT nextval('reprise.claim_rotation')", DENIED),
    ];
    let operator = [
        ("DELETE FROM reprise.history", DENIED),
        ("TRUNCATE reprise.history", DENIED),
        (
            "SET reprise.retention = 'on'; DELETE FROM reprise.history",
            DENIED,
        ),
        ("DELETE FROM reprise.runs", DENIED),
        (
            "UPDATE reprise.activity_tasks SET lease_owner = 'me'",
            DENIED,
        ),
        ("UPDATE reprise.updates SET state = 'completed'", DENIED),
        (
            "INSERT INTO reprise.workers SELECT * FROM reprise.workers",
            DENIED,
        ),
        ("SELECT nextval('reprise.claim_rotation')", DENIED),
    ];
    let engine = [
        ("DELETE FROM reprise.history", DENIED),
        ("TRUNCATE reprise.history", DENIED),
        (
            "SET reprise.retention = 'on'; DELETE FROM reprise.history",
            DENIED,
        ),
        ("DELETE FROM reprise.runs", DENIED),
        ("SELECT reprise.prune_closed_runs(0, 0, 10)", DENIED),
        ("DELETE FROM reprise.schedules", DENIED),
        (
            "INSERT INTO reprise.task_limits SELECT * FROM reprise.task_limits",
            DENIED,
        ),
        ("SELECT * FROM reprise.workers", DENIED),
    ];
    for role in [
        "reprise_engine",
        "reprise_worker",
        "reprise_operator",
        "reprise_observer",
    ] {
        refused(&db, role, &everyone).await;
    }
    refused(&db, "reprise_worker", &worker).await;
    refused(&db, "reprise_observer", &observer).await;
    refused(&db, "reprise_operator", &operator).await;
    refused(&db, "reprise_engine", &engine).await;
}
