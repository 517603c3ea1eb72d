//! Flow control on PostgreSQL: fleet-wide concurrency and rate limits held at claim time,
//! priorities, fairness keys taking turns, the per-worker limit, and what bad limits get.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reprise_engine::{
    Client, Error, Limit, LimitScope, Priority, Rate, StartOptions, Store, Worker, WorkerOptions,
};
use reprise_sdk::{ActivityContext, ActivityDef, Registry, WorkflowContext, WorkflowDef};

use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

/// Works for the given milliseconds.
const CHARGE: ActivityDef<(String, u64), ()> = ActivityDef::new("charge-card");
/// Calls `CHARGE` once per label, all at once, each working the given milliseconds.
const FAN_OUT: WorkflowDef<(Vec<String>, u64), ()> = WorkflowDef::new("fan-out");

/// Calls `CHARGE` once with the label, at the call's own priority.
const PRIORITISED_CALL: WorkflowDef<(String, i64), ()> = WorkflowDef::new("prioritised-call");

/// When each attempt ran, by its own clock, and under which label.
#[derive(Clone, Default)]
struct Attempts(Arc<Mutex<Vec<(String, Instant, Instant)>>>);

impl Attempts {
    fn labels(&self) -> Vec<String> {
        let attempts = self.0.lock().unwrap();
        attempts.iter().map(|(label, _, _)| label.clone()).collect()
    }

    /// The most attempts that ran at the same moment.
    fn most_at_once(&self) -> usize {
        let attempts = self.0.lock().unwrap();
        let mut edges: Vec<(Instant, i32)> = attempts
            .iter()
            .flat_map(|&(_, start, end)| [(start, 1), (end, -1)])
            .collect();
        // An end before a start at the same instant: touching attempts did not overlap.
        edges.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, change) in edges {
            now += change;
            most = most.max(now);
        }
        usize::try_from(most).unwrap()
    }
}

fn engine_registry() -> Registry {
    Registry::builder()
        .workflow(
            FAN_OUT,
            |ctx: WorkflowContext, (labels, millis): (Vec<String>, u64)| async move {
                let calls = labels
                    .into_iter()
                    .map(|label| ctx.activity(CHARGE, &(label, millis)));
                for result in futures::future::join_all(calls).await {
                    result?;
                }
                Ok(())
            },
        )
        .workflow(
            PRIORITISED_CALL,
            |ctx: WorkflowContext, (label, priority): (String, i64)| async move {
                let priority = Priority::new(priority).unwrap();
                ctx.activity(CHARGE, &(label, 0)).priority(priority).await?;
                Ok(())
            },
        )
        .build()
        .unwrap()
}

/// A worker registry whose attempts record themselves in `attempts`: the label is recorded as
/// it starts (the order of starts), the times once it ends.
fn worker_registry(attempts: &Attempts) -> Registry {
    let attempts = attempts.clone();
    Registry::builder()
        .activity(
            CHARGE,
            move |_: ActivityContext, (label, millis): (String, u64)| {
                let attempts = attempts.clone();
                async move {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    attempts
                        .0
                        .lock()
                        .unwrap()
                        .push((label, start, Instant::now()));
                    Ok(())
                }
            },
        )
        .build()
        .unwrap()
}

/// A fresh database with an engine running; workers are each test's own.
struct Setup {
    db: TestDb,
    store: Store,
    client: Client,
    running: Running,
}

impl Setup {
    async fn new() -> Setup {
        let db = TestDb::migrated().await;
        let store = Store::new(db.pool.clone());
        let client = Client::new(store.clone());
        let mut running = Running::new();
        run_engine(&store, engine_registry(), engine_options(), &mut running);
        Setup {
            db,
            store,
            client,
            running,
        }
    }
}

/// Runs `claims` claims of one slot each with a fresh worker, each attempt finished before
/// the next claim; returns what the attempts recorded.
async fn one_claim_at_a_time(store: &Store, claims: u64) -> Attempts {
    let attempts = Attempts::default();
    let options = WorkerOptions {
        max_concurrent: 1,
        ..worker_options()
    };
    let worker = Worker::new(store.clone(), worker_registry(&attempts), options);
    let mut progress = worker.progress();
    for claim in 1..=claims {
        assert_eq!(worker.poll_once().await.unwrap(), 1);
        progress
            .wait_for(|s| s.outcomes_recorded == claim)
            .await
            .unwrap();
    }
    attempts
}

fn labels(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Waits until `n` tasks are queued for workers.
async fn queued(client: &Client, running: &Running, workflow_id: &str, n: usize) {
    let scheduled = async || {
        client
            .describe(workflow_id)
            .await
            .unwrap()
            .pending_activities
            .len()
            == n
    };
    tokio::time::timeout(Duration::from_secs(60), running.until(scheduled))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_concurrency_limit_holds_across_four_workers() {
    let Setup {
        db,
        store,
        client,
        mut running,
    } = Setup::new().await;
    let handle = client
        .start(FAN_OUT, "charges", &(labels("c", 16), 150))
        .await
        .unwrap();
    queued(&client, &running, "charges", 16).await;
    let scope = LimitScope::ActivityType("charge-card".into());
    let three = Limit {
        max_concurrent: Some(3),
        rate: None,
    };
    client.set_limit(scope.clone(), three).await.unwrap();

    let attempts = Attempts::default();
    for _ in 0..4 {
        let options = WorkerOptions {
            max_concurrent: 4,
            ..worker_options()
        };
        run_worker(&store, worker_registry(&attempts), options, &mut running);
    }
    tokio::time::timeout(Duration::from_secs(60), handle.result())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempts.labels().len(), 16);
    // Sixteen workers' worth of slots, three at a time: never more, and the limit was used.
    assert_eq!(attempts.most_at_once(), 3);

    let usage = client.limits().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].scope.clone(), usage[0].limit), (scope, three));
    assert_eq!((usage[0].running, usage[0].waiting), (0, 0));
    drop(running);
    db.drop_database().await;
}

#[tokio::test]
async fn a_worker_runs_no_more_than_its_own_limit_and_drains_within_it() {
    let Setup {
        db,
        store,
        client,
        mut running,
    } = Setup::new().await;
    let handle = client
        .start(FAN_OUT, "own-limit", &(labels("c", 8), 100))
        .await
        .unwrap();
    queued(&client, &running, "own-limit", 8).await;

    let attempts = Attempts::default();
    let worker = Worker::new(
        store.clone(),
        worker_registry(&attempts),
        WorkerOptions {
            max_concurrent: 2,
            shutdown_grace: Duration::from_secs(30),
            ..worker_options()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runs = worker.clone();
    let worker_run =
        tokio::spawn(async move { runs.run(async { stopped.await.unwrap_or(()) }).await });
    // Stop it while its first attempts run: it lets them finish and claims nothing more.
    let mut progress = worker.progress();
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|s| s.attempts_started >= 2),
    )
    .await
    .unwrap()
    .unwrap();
    stop.send(()).unwrap();
    worker_run.await.unwrap().unwrap();
    let stats = worker.stats();
    assert_eq!(
        stats.attempts_started, stats.outcomes_recorded,
        "drained, not handed back"
    );
    assert!(stats.attempts_started < 8, "{stats:?}");
    let pending = client
        .describe("own-limit")
        .await
        .unwrap()
        .pending_activities;
    assert!(pending.iter().all(|a| !a.running), "{pending:?}");

    run_worker(
        &store,
        worker_registry(&attempts),
        WorkerOptions {
            max_concurrent: 2,
            ..worker_options()
        },
        &mut running,
    );
    tokio::time::timeout(Duration::from_secs(60), handle.result())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempts.labels().len(), 8);
    assert_eq!(attempts.most_at_once(), 2);
    drop(running);
    db.drop_database().await;
}

#[tokio::test]
async fn a_rate_limit_hands_out_its_burst_then_one_token_at_a_time() {
    let Setup {
        db,
        store,
        client,
        running,
    } = Setup::new().await;
    client
        .start(FAN_OUT, "rated", &(labels("r", 6), 0))
        .await
        .unwrap();
    queued(&client, &running, "rated", 6).await;
    // One token every 100 s: within this test, the burst of 2 is all there is.
    let slow = Limit {
        max_concurrent: None,
        rate: Some(Rate {
            per_second: 0.01,
            burst: 2,
        }),
    };
    client
        .set_limit(LimitScope::Queue("default".into()), slow)
        .await
        .unwrap();
    let attempts = Attempts::default();
    let worker = Worker::new(store.clone(), worker_registry(&attempts), worker_options());
    assert_eq!(worker.poll_once().await.unwrap(), 2);
    assert_eq!(worker.poll_once().await.unwrap(), 0);
    let usage = client.limits().await.unwrap();
    assert_eq!(usage[0].waiting, 4);
    assert!(usage[0].tokens.unwrap() < 1.0, "{usage:?}");

    // Lifted, the rest runs.
    assert!(
        client
            .clear_limit(&LimitScope::Queue("default".into()))
            .await
            .unwrap()
    );
    let mut started = 0;
    while started < 4 {
        started += worker.poll_once().await.unwrap();
    }
    drop(running);
    db.drop_database().await;
}

#[tokio::test]
async fn a_higher_priority_task_overtakes_a_backlog() {
    let Setup {
        db,
        store,
        client,
        running,
    } = Setup::new().await;
    let low = StartOptions {
        priority: Priority::new(1).unwrap(),
        ..StartOptions::default()
    };
    client
        .start_with_options(FAN_OUT, "backlog", &(labels("low", 50), 0), low)
        .await
        .unwrap();
    queued(&client, &running, "backlog", 50).await;
    let urgent = StartOptions {
        priority: Priority::new(5).unwrap(),
        ..StartOptions::default()
    };
    client
        .start_with_options(FAN_OUT, "urgent", &(vec!["urgent".into()], 0), urgent)
        .await
        .unwrap();
    queued(&client, &running, "urgent", 1).await;
    // A run of the lowest priority whose one call asks for the highest.
    let lowest = StartOptions {
        priority: Priority::LOWEST,
        ..StartOptions::default()
    };
    let call = ("top".to_string(), 9);
    client
        .start_with_options(PRIORITISED_CALL, "called", &call, lowest)
        .await
        .unwrap();
    queued(&client, &running, "called", 1).await;

    let attempts = one_claim_at_a_time(&store, 3).await;
    assert_eq!(attempts.labels(), ["top", "urgent", "low0"]);
    // The call's priority is recorded with its decision.
    let history = client
        .export(client.describe("called").await.unwrap().run_id)
        .await
        .unwrap();
    let given: Vec<_> = history
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            reprise_history::EventKind::ActivityScheduled(s) => Some(s.priority),
            _ => None,
        })
        .collect();
    assert_eq!(given, [Some(Priority::HIGHEST)]);
    drop(running);
    db.drop_database().await;
}

#[tokio::test]
async fn a_small_tenant_is_served_beside_a_large_backlog() {
    let Setup {
        db,
        store,
        client,
        running,
    } = Setup::new().await;
    let tenant = |key: &str| StartOptions {
        fairness_key: Some(key.into()),
        ..StartOptions::default()
    };
    client
        .start_with_options(FAN_OUT, "big", &(labels("big", 10_000), 0), tenant("big"))
        .await
        .unwrap();
    queued(&client, &running, "big", 10_000).await;
    client
        .start_with_options(FAN_OUT, "small", &(labels("small", 10), 0), tenant("small"))
        .await
        .unwrap();
    queued(&client, &running, "small", 10).await;

    // One attempt per claim: the keys take turns, so the small tenant's ten are done within
    // twenty claims (not after the 10,000 queued before them).
    let attempts = one_claim_at_a_time(&store, 20).await;
    let small = attempts
        .labels()
        .iter()
        .filter(|l| l.starts_with("small"))
        .count();
    assert_eq!(small, 10, "{:?}", attempts.labels());
    drop(running);
    db.drop_database().await;
}

#[tokio::test]
async fn bad_limits_and_priorities_are_typed_errors() {
    let Setup {
        db,
        store: _,
        client,
        running,
    } = Setup::new().await;
    client
        .start(FAN_OUT, "known", &(labels("k", 1), 0))
        .await
        .unwrap();
    queued(&client, &running, "known", 1).await;
    let queue = LimitScope::Queue("default".into());
    let bad = [
        Limit::default(),
        Limit {
            max_concurrent: Some(0),
            rate: None,
        },
        Limit {
            max_concurrent: None,
            rate: Some(Rate {
                per_second: 5.0,
                burst: 0,
            }),
        },
        Limit {
            max_concurrent: None,
            rate: Some(Rate {
                per_second: -1.0,
                burst: 1,
            }),
        },
    ];
    for limit in bad {
        let err = client.set_limit(queue.clone(), limit).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{limit:?}: {err}");
    }
    let err = client
        .set_limit(
            LimitScope::Queue("defualt".into()),
            Limit {
                max_concurrent: Some(1),
                rate: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("queue defualt")),
        "{err}"
    );
    assert!(
        client.limits().await.unwrap().is_empty(),
        "nothing was stored"
    );
    assert!(matches!(
        Priority::new(10),
        Err(reprise_history::Error::InvalidPriority(10))
    ));
    let Err(err) = client
        .start_with_options(
            FAN_OUT,
            "no-key",
            &(Vec::new(), 0),
            StartOptions {
                fairness_key: Some(String::new()),
                ..StartOptions::default()
            },
        )
        .await
    else {
        panic!("an empty fairness key was taken");
    };
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    drop(running);
    db.drop_database().await;
}
