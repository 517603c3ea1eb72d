//! Evolving workflow code on PostgreSQL: nondeterministic code parks its runs and fixed code
//! resumes them; the deploy check and patch usage say what a deploy would break.

use std::time::Duration;

use reprise_engine::{Client, EngineOptions, Store};
use reprise_sdk::{SignalDef, WorkflowContext, WorkflowDef};

use crate::engine::{GREET, parked_reason, registry, resumed, within};
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nondeterministic_code_parks_the_run_and_fixed_code_resumes_it() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    const V: WorkflowDef<(), String> = WorkflowDef::new("versioned");
    const NOTE: SignalDef<String> = SignalDef::new("note");
    // v1 greets, waits for a note, then greets again.
    let v1 = || {
        registry().workflow(V, |ctx: WorkflowContext, ()| async move {
            ctx.activity(GREET, &"first".to_string()).await?;
            let note = ctx.signal(NOTE).await?;
            Ok(ctx.activity(GREET, &note).await?)
        })
    };
    let mut running = Running::new();
    let opts = |build: &str| EngineOptions {
        build: build.to_string(),
        ..engine_options()
    };
    run_engine(&store, v1().build().unwrap(), opts("v1"), &mut running);
    run_worker(
        &store,
        registry().build().unwrap(),
        worker_options(),
        &mut running,
    );
    let handle = client.start(V, "versioned-1", &()).await.unwrap();
    let greeted = async || client.describe("versioned-1").await.unwrap().head_seq.get() >= 3;
    within(running.until(greeted)).await;
    running.stop().await; // v1 is gone; its run waits for a note.

    // v2 sleeps before the first greeting: replaying v1's history is nondeterministic.
    let v2 = registry().workflow(V, |ctx: WorkflowContext, ()| async move {
        ctx.sleep(Duration::from_secs(1)).await?;
        ctx.activity(GREET, &"first".to_string()).await?;
        Ok(ctx.activity(GREET, &ctx.signal(NOTE).await?).await?)
    });
    let mut running = Running::new();
    run_engine(&store, v2.build().unwrap(), opts("v2"), &mut running);
    client
        .signal("versioned-1", NOTE, &"Lin".to_string())
        .await
        .unwrap();
    let parked = within(parked_reason(&running, &client, "versioned-1")).await;
    assert!(
        parked.starts_with("nondeterminism ND01 at seq 2: history has ActivityScheduled(\"greet\"), but the code made TimerStarted(1s)"),
        "{parked}"
    );
    let scrape = store.metrics().render();
    assert!(
        scrape
            .contains("reprise_nondeterminism_total{workflow_type=\"versioned\",code=\"ND01\"} 1"),
        "{scrape}"
    );
    drop(running);

    // v3 is v1 again (another build): it resumes the run where it stopped.
    let mut running = Running::new();
    run_engine(&store, v1().build().unwrap(), opts("v3"), &mut running);
    run_worker(
        &store,
        registry().build().unwrap(),
        worker_options(),
        &mut running,
    );
    within(resumed(&running, &client, "versioned-1")).await;
    assert_eq!(within(handle.result()).await.unwrap(), "hello, Lin");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_deploy_check_names_runs_new_code_would_break_and_patch_usage_counts_them() {
    const VER: WorkflowDef<(), String> = WorkflowDef::new("ver");
    const GO: SignalDef<String> = SignalDef::new("go");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    // v1 waits for "go".
    let v1 = || {
        registry().workflow(VER, |ctx: WorkflowContext, ()| async move {
            Ok(ctx.signal(GO).await?)
        })
    };
    // v2 sleeps first — unguarded, a breaking change.
    let v2_unpatched = || {
        registry().workflow(VER, |ctx: WorkflowContext, ()| async move {
            ctx.sleep(Duration::from_secs(1)).await?;
            Ok(ctx.signal(GO).await?)
        })
    };
    // v2 as it should be: the new step behind a patch.
    let v2 = || {
        registry().workflow(VER, |ctx: WorkflowContext, ()| async move {
            if ctx.patched("sleep-first") {
                ctx.sleep(Duration::from_secs(1)).await?;
            }
            Ok(ctx.signal(GO).await?)
        })
    };
    let mut running = Running::new();
    run_engine(
        &store,
        v1().build().unwrap(),
        engine_options(),
        &mut running,
    );
    for i in 0..3 {
        client.start(VER, &format!("ver-{i}"), &()).await.unwrap();
    }
    let all_stepped = async || {
        let stepped: i64 =
            sqlx::query_scalar("SELECT count(*) FROM reprise.runs WHERE applied_seq > 0")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        stepped == 3
    };
    within(running.until(all_stepped)).await;
    drop(running);

    let check = reprise_engine::check_deploy(&store, &v2_unpatched().build().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(check.checked, 3);
    assert_eq!(check.would_break.len(), 3);
    assert!(
        check
            .to_string()
            .starts_with("NOT safe to deploy: 3 of 3 sampled open runs would break:\n"),
        "{check}"
    );
    assert!(
        check.would_break[0].reason.starts_with("nondeterminism ND03 at seq 2: the code made TimerStarted(1s), but history has no decision here"),
        "{}",
        check.would_break[0].reason
    );
    let check = reprise_engine::check_deploy(&store, &v2().build().unwrap(), 10)
        .await
        .unwrap();
    assert!(check.is_safe(), "{check}");
    assert_eq!(
        check.to_string(),
        "safe to deploy: all 3 sampled open runs replay"
    );

    // New runs on v2 take the new branch and record the patch; the three old ones do not.
    let mut running = Running::new();
    run_engine(
        &store,
        v2().build().unwrap(),
        engine_options(),
        &mut running,
    );
    for i in 3..5 {
        client.start(VER, &format!("ver-{i}"), &()).await.unwrap();
    }
    let recorded = async || {
        let usage = client.patch_usage("ver").await.unwrap();
        usage.first().is_some_and(|u| u.open_runs_with_marker == 2)
    };
    within(running.until(recorded)).await;
    let usage = client.patch_usage("ver").await.unwrap();
    assert_eq!(
        usage,
        [reprise_engine::PatchUsage {
            patch_id: reprise_history::PatchId::new("sleep-first").unwrap(),
            open_runs_with_marker: 2,
            open_runs_without_marker: 3,
        }]
    );
    db.drop_database().await;
}

/// Two engines in one process, each with its own build: the run the broken one parks is
/// taken back by the fixed one on its own (its sweep), without `retry_parked`. With
/// `EngineOptions::default()` both would share the executable's build, and the fixed engine
/// would leave the run parked (docs/versioning.md, "Builds").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_of_two_builds_in_one_process_hand_a_parked_run_over() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    const FLAKY: WorkflowDef<(), String> = WorkflowDef::new("flaky");
    let broken = registry()
        .workflow(FLAKY, |_ctx: WorkflowContext, ()| async move {
            if true {
                panic!("a bug in this build");
            }
            Ok(String::new())
        })
        .build()
        .unwrap();
    let fixed = registry()
        .workflow(FLAKY, |_ctx: WorkflowContext, ()| async move {
            Ok("fixed".to_string())
        })
        .build()
        .unwrap();
    let opts = |build: &str| EngineOptions {
        build: build.to_string(),
        parked_sweep: Duration::from_millis(100),
        ..engine_options()
    };
    let mut running = Running::new();
    run_engine(&store, broken, opts("broken"), &mut running);
    let handle = client.start(FLAKY, "flaky-1", &()).await.unwrap();
    let parked = within(parked_reason(&running, &client, "flaky-1")).await;
    assert!(parked.starts_with("workflow code panicked"), "{parked}");

    // The fixed build starts beside the broken one, in the same process.
    run_engine(&store, fixed, opts("fixed"), &mut running);
    let completed = async || {
        client.describe("flaky-1").await.unwrap().status == reprise_history::RunState::Completed
    };
    within(running.until(completed)).await;
    assert_eq!(within(handle.result()).await.unwrap(), "fixed");
    drop(running);
    db.drop_database().await;
}
