//! The chaos test, short form (about a minute): two engines and two workers SIGKILLed every
//! 300–700 ms, PostgreSQL restarted fast then immediate, 150 mixed workflows, then the audit
//! (`reprise_examples::chaos`). Its own PostgreSQL, in a temporary folder: the other tests'
//! server is never restarted. A failure prints the seed; `REPRISE_CHAOS_SEED=<seed>` replays
//! the plan.

use reprise_examples::chaos::{self, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_engines_and_workers_and_restarted_postgres_lose_nothing_and_do_nothing_twice() {
    let _alone = crate::CHAOS.write().await;
    let seed = chaos::seed_from_env();
    let config = Config::short(env!("CARGO_BIN_EXE_reprise-chaos").into(), seed);
    let report = chaos::run(config).await.expect("the chaos run ran");
    eprint!("{report}");
    // Every rule the audit keeps, stalls within their (liveness) bounds included.
    assert!(
        report.problems.is_empty(),
        "seed {seed}: {} problems",
        report.problems.len()
    );
    let figures = &report.figures;
    // The faults happened: otherwise a clean audit proves nothing.
    assert_eq!((figures.restarts_fast, figures.restarts_immediate), (1, 1));
    assert!(
        figures.engine_kills >= 5 && figures.worker_kills >= 5,
        "{figures:?}"
    );
    assert_eq!(figures.effects_applied_twice, 0);
}
