//! The activity result cache on PostgreSQL: a result reused by another run with the same
//! input (also through an encrypting codec, whose ciphertexts differ), computed anew for other
//! input, after its time to live (test clock) and once cleared; failures never cached; the
//! histories record every result either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reprise_codecs::{Aes256Gcm, Keyring};
use reprise_engine::history::{DataConverter, EventKind, RunId};
use reprise_engine::{Client, Store};
use reprise_sdk::{
    ActivityDef, ActivityError, CachePolicy, Registry, WorkflowContext, WorkflowDef, WorkflowError,
};

use crate::engine::within;
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

const SQUARE_TWICE: WorkflowDef<i64, i64> = WorkflowDef::new("square-twice");
/// Squares its input, counting the calls; refuses negative input.
const SQUARE: ActivityDef<i64, i64> = ActivityDef::new("square");

fn registry(calls: Arc<AtomicU32>, converter: DataConverter) -> Registry {
    Registry::builder()
        .converter(converter)
        .workflow(SQUARE_TWICE, |ctx: WorkflowContext, n: i64| async move {
            Ok::<_, WorkflowError>(ctx.activity(SQUARE, &n).await?)
        })
        .activity(SQUARE, move |_, n: i64| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if n < 0 {
                    return Err(ActivityError::non_retryable("Negative", "no negatives"));
                }
                Ok(n * n)
            }
        })
        .cache(SQUARE, CachePolicy::new("v1", Duration::from_secs(3_600)))
        .build()
        .unwrap()
}

struct Setup {
    _db: TestDb,
    store: Store,
    client: Client,
    calls: Arc<AtomicU32>,
    _running: Running,
}

async fn setup(converter: DataConverter) -> Setup {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let mut running = Running::new();
    let code = registry(calls.clone(), converter.clone());
    run_engine(&store, code.clone(), engine_options(), &mut running);
    run_worker(&store, code, worker_options(), &mut running);
    let client = Client::new(store.clone()).with_converter(converter);
    Setup {
        _db: db,
        store,
        client,
        calls,
        _running: running,
    }
}

impl Setup {
    /// Runs the workflow to its end; its result and run.
    async fn run(&self, id: &str, n: i64) -> (Result<i64, reprise_engine::Error>, RunId) {
        let handle = self.client.start(SQUARE_TWICE, id, &n).await.unwrap();
        let result = within(handle.result()).await;
        (result, handle.run_id())
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The activity result the run's history records.
    async fn recorded(&self, run_id: RunId) -> i64 {
        let history = self.client.export(run_id).await.unwrap();
        let result = history.events().iter().find_map(|e| match &e.kind {
            EventKind::ActivityCompleted(c) => Some(c.result.clone()),
            _ => None,
        });
        self.client
            .converter()
            .from_payload(&result.unwrap())
            .unwrap()
    }
}

async fn a_result_is_reused_by_other_runs_with_the_same_input(converter: DataConverter) {
    let s = setup(converter).await;
    let (first, first_run) = s.run("first", 12).await;
    assert_eq!(first.unwrap(), 144);
    assert_eq!(s.calls(), 1);
    let (second, second_run) = s.run("second", 12).await;
    assert_eq!(second.unwrap(), 144);
    assert_eq!(s.calls(), 1, "the second run took the cached result");
    assert_eq!(s.recorded(first_run).await, 144);
    assert_eq!(
        s.recorded(second_run).await,
        144,
        "history records a cached result too"
    );

    let (other, _) = s.run("other", 5).await;
    assert_eq!(other.unwrap(), 25);
    assert_eq!(s.calls(), 2, "other input is computed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_reused_by_another_run_with_the_same_input() {
    a_result_is_reused_by_other_runs_with_the_same_input(DataConverter::default()).await;
}

/// The same through AES-GCM: each encryption of the input differs (a fresh nonce), so the key
/// must be of the plain input for a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_input_finds_its_result() {
    let keys = Keyring::parse("k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let converter = DataConverter::default()
        .with_codec(Aes256Gcm::new(keys))
        .unwrap();
    a_result_is_reused_by_other_runs_with_the_same_input(converter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_expires_and_a_cleared_cache_computes_again() {
    let s = setup(DataConverter::default()).await;
    s.run("a", 3).await.0.unwrap();
    s.run("b", 3).await.0.unwrap();
    assert_eq!(s.calls(), 1);
    s.store.clock().advance(Duration::from_secs(3_601));
    s.run("c", 3).await.0.unwrap();
    assert_eq!(s.calls(), 2, "an expired result is computed again");
    s.run("d", 3).await.0.unwrap();
    assert_eq!(s.calls(), 2, "and cached again");

    // Another type's name clears nothing; this type's clears its result.
    assert_eq!(
        s.client.clear_activity_cache(Some("cube")).await.unwrap(),
        0
    );
    assert_eq!(
        s.client.clear_activity_cache(Some("square")).await.unwrap(),
        1
    );
    s.run("e", 3).await.0.unwrap();
    assert_eq!(s.calls(), 3, "a cleared cache computes again");
    assert_eq!(s.client.clear_activity_cache(None).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_not_cached() {
    let s = setup(DataConverter::default()).await;
    assert!(s.run("a", -1).await.0.is_err());
    assert!(s.run("b", -1).await.0.is_err());
    assert_eq!(s.calls(), 2, "each run tried the code");
}

#[test]
fn a_cache_of_an_unregistered_activity_or_without_a_version_is_refused() {
    let unregistered = Registry::builder()
        .cache(SQUARE, CachePolicy::new("v1", Duration::from_secs(1)))
        .build();
    assert!(matches!(
        unregistered,
        Err(reprise_sdk::Error::UnknownActivityType { .. })
    ));
    for policy in [
        CachePolicy::new("", Duration::from_secs(1)),
        CachePolicy::new("v1", Duration::ZERO),
        CachePolicy::new("v1", Duration::MAX),
    ] {
        let refused = Registry::builder()
            .activity(SQUARE, |_, n: i64| async move { Ok(n) })
            .cache(SQUARE, policy)
            .build();
        assert!(matches!(
            refused,
            Err(reprise_sdk::Error::InvalidCachePolicy { .. })
        ));
    }
}
