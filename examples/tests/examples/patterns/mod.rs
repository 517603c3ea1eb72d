//! Each pattern example's demo, run as `cargo run -p reprise-examples -- <name>` runs it, on a
//! database of its own, with what it must show checked against the runs' histories.

mod approval;
mod batch;
mod caching;
mod dead_letters;
mod media;
mod nightly_report;
mod saga;

use reprise_examples::patterns::Build;
use reprise_examples::patterns::demo::{Demo, DemoOptions};

use crate::support::TestDb;

/// Awaits a demo, failing the test after five minutes rather than hanging CI (a child
/// process that died at start would leave a demo waiting); never while the chaos test runs.
pub(crate) async fn within<T>(demo: impl std::future::Future<Output = T>) -> T {
    let _beside_others = crate::CHAOS.read().await;
    tokio::time::timeout(std::time::Duration::from_secs(300), demo)
        .await
        .expect("the demo finished within five minutes")
}

/// A demo on a fresh database: engine and worker in this process, or as processes of the
/// example binary.
pub(crate) async fn demo_on(db: &TestDb, processes: bool) -> Demo {
    let options = DemoOptions {
        url: db.url.clone(),
        processes,
        exe: env!("CARGO_BIN_EXE_reprise-example").into(),
        chain_key: None,
    };
    Demo::start(options, Build::V2)
        .await
        .expect("the demo starts")
}
