//! The alert rules and the dashboard in `ops/` name only metrics the processes export.

use std::collections::BTreeSet;

use std::time::Duration;

use reprise_history::RunState;

use super::gauges::{QueueSample, Sample};
use super::{AttemptOutcome, Metrics, StepPath};

/// Metrics with a series in every family (a family without one is not rendered).
fn with_every_family() -> Metrics {
    let m = Metrics::new();
    m.run_started("t");
    m.run_closed("t", RunState::Completed);
    m.stepped(StepPath::batch, 1, Duration::ZERO);
    m.cache_lookup(true);
    m.cache_eviction();
    m.replayed(1);
    m.parked("other");
    m.failed_batch();
    m.attempt("a", "q", AttemptOutcome::completed, Duration::ZERO);
    m.schedule_to_start("q", 0.0);
    m.timed_out("a", "q", reprise_history::TimeoutKind::Heartbeat);
    m.nondeterminism("w", "ND01");
    m.input_changed("w");
    m.claimed_run(Duration::ZERO, &[Duration::ZERO]);
    m.listen_reconnected("c");
    m.pool(1, 1);
    let queue = || QueueSample {
        task_queue: "q".into(),
        ready: 1,
        oldest_age_seconds: 1.0,
    };
    m.sampled(&Sample {
        runs: vec![queue()],
        activities: vec![queue()],
        parked: Vec::new(),
        limits: vec![crate::flow_control::LimitUsage {
            scope: crate::LimitScope::ActivityType("charge-card".into()),
            limit: crate::Limit {
                max_concurrent: Some(5),
                rate: Some(crate::Rate {
                    per_second: 50.0,
                    burst: 50,
                }),
            },
            running: 2,
            waiting: 7,
            tokens: Some(12.5),
        }],
    });
    m
}

/// Every sample name a scrape can hold: counters end in `_total`, histograms in `_bucket`,
/// `_sum` and `_count`.
fn exported_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in with_every_family().render().lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The `reprise_...` identifiers in a text.
fn named_metrics(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("reprise_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        found.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    found
}

#[test]
fn alerts_and_dashboard_name_only_exported_metrics() {
    let exported = exported_names();
    assert!(exported.contains("reprise_parked_runs"), "{exported:?}");
    let ops = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops");
    for file in ["prometheus-alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(format!("{ops}/{file}")).unwrap_or_default();
        let named = named_metrics(&text);
        assert!(named.len() >= 5, "{file} names too few metrics: {named:?}");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics nobody exports: {unknown:?}"
        );
    }
}

#[test]
fn the_check_catches_a_misspelt_metric() {
    let named = named_metrics("sum(reprise_parked_run) > 0 and rate(reprise_steps_total[1m])");
    let unknown: Vec<_> = named.difference(&exported_names()).cloned().collect();
    assert_eq!(unknown, ["reprise_parked_run"]);
}
