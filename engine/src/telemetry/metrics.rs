//! `Metrics`: Reprise's Prometheus metrics, one registry per process (shared by its store's
//! clones, so an engine and a worker in one process export together).
//!
//! Names follow Prometheus conventions (`reprise_` prefix, `_total`, `_seconds`); labels are
//! workflow type, activity type, task queue, path, status and outcome — never a workflow id or
//! anything from a payload, so the number of series stays bounded by the code, not the data.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use reprise_history::{RunState, TimeoutKind};

use super::labels::*;
use super::series::{ActivitySeries, Keyed, QueueSeries, WorkflowSeries};

fn seconds_histogram() -> Histogram {
    // 100 µs to about 100 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

/// Ages in seconds, by task queue.
type AgeGauges = Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;

struct Families {
    registry: Registry,
    workflows_started: Family<WorkflowLabels, Counter>,
    workflows_closed: Family<ClosedLabels, Counter>,
    steps: Family<PathLabels, Counter>,
    step_seconds: Family<PathLabels, Histogram, fn() -> Histogram>,
    cache: Family<CacheLabels, Counter>,
    cache_evictions: Counter,
    queries: Family<QueryLabels, Counter>,
    replays: Counter,
    replay_events: Histogram,
    parked: Family<ParkLabels, Counter>,
    failed_batches: Counter,
    attempts: Family<AttemptLabels, Counter>,
    attempt_seconds: Family<ActivityLabels, Histogram, fn() -> Histogram>,
    local_attempts: Family<LocalAttemptLabels, Counter>,
    local_attempt_seconds: Family<LocalActivityLabels, Histogram, fn() -> Histogram>,
    schedule_to_start: Family<QueueLabels, Histogram, fn() -> Histogram>,
    timeouts: Family<TimeoutLabels, Counter>,
    nondeterminism: Family<NondeterminismLabels, Counter>,
    input_changes: Family<WorkflowLabels, Counter>,
    listen_reconnects: Family<ChannelLabels, Counter>,
    pool_connections: Family<CacheLabels, Gauge>,
    ready_runs: Family<QueueLabels, Gauge>,
    oldest_ready_run_seconds: AgeGauges,
    ready_activities: Family<QueueLabels, Gauge>,
    oldest_ready_activity_seconds: AgeGauges,
    parked_runs: Family<ParkLabels, Gauge>,
    limit_running: Family<LimitLabels, Gauge>,
    limit_waiting: Family<LimitLabels, Gauge>,
    limit_tokens: Family<LimitLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    gauges_sampled: Counter,
    /// The series every step touches, looked up once: a step then costs two atomic adds and
    /// a histogram observation, with no label lookup or allocation.
    hot: HotSeries,
    /// Series per workflow type, for every start and close.
    workflows: Keyed<WorkflowSeries>,
    /// Series per task queue and activity type, for every attempt.
    queues: Keyed<QueueSeries>,
}

struct HotSeries {
    batch_steps: Counter,
    direct_steps: Counter,
    batch_seconds: Histogram,
    direct_seconds: Histogram,
    cache_hits: Counter,
    cache_misses: Counter,
    /// Ready to claimed, per run of a batch.
    workflow_schedule_to_start: Histogram,
    /// Due to claimed, per timer fired.
    timer_lateness: Histogram,
}

/// Reprise's metrics of one process. Cheap to clone; every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Families>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every Reprise metric in it.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("reprise");
        let f = Families {
            workflows_started: Family::default(),
            workflows_closed: Family::default(),
            steps: Family::default(),
            step_seconds: Family::new_with_constructor(seconds_histogram),
            cache: Family::default(),
            cache_evictions: Counter::default(),
            queries: Family::default(),
            replays: Counter::default(),
            replay_events: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            parked: Family::default(),
            failed_batches: Counter::default(),
            attempts: Family::default(),
            attempt_seconds: Family::new_with_constructor(seconds_histogram),
            local_attempts: Family::default(),
            local_attempt_seconds: Family::new_with_constructor(seconds_histogram),
            schedule_to_start: Family::new_with_constructor(seconds_histogram),
            timeouts: Family::default(),
            nondeterminism: Family::default(),
            input_changes: Family::default(),
            listen_reconnects: Family::default(),
            pool_connections: Family::default(),
            ready_runs: Family::default(),
            oldest_ready_run_seconds: Family::default(),
            ready_activities: Family::default(),
            oldest_ready_activity_seconds: Family::default(),
            parked_runs: Family::default(),
            limit_running: Family::default(),
            limit_waiting: Family::default(),
            limit_tokens: Family::default(),
            gauges_sampled: Counter::default(),
            registry: Registry::default(),
            workflows: Keyed::default(),
            queues: Keyed::default(),
            hot: HotSeries {
                batch_steps: Counter::default(),
                direct_steps: Counter::default(),
                batch_seconds: seconds_histogram(),
                direct_seconds: seconds_histogram(),
                cache_hits: Counter::default(),
                cache_misses: Counter::default(),
                workflow_schedule_to_start: seconds_histogram(),
                timer_lateness: seconds_histogram(),
            },
        };
        // One statement each: `get_or_create` returns a read guard that lives to the end of
        // its statement, and creating the next series needs the write lock.
        let path = |path| PathLabels { path };
        let batch_steps = f.steps.get_or_create(&path(StepPath::batch)).clone();
        let direct_steps = f.steps.get_or_create(&path(StepPath::direct)).clone();
        let batch_seconds = f.step_seconds.get_or_create(&path(StepPath::batch)).clone();
        let direct_seconds = f
            .step_seconds
            .get_or_create(&path(StepPath::direct))
            .clone();
        let cache_hits = f
            .cache
            .get_or_create(&CacheLabels { result: "hit" })
            .clone();
        let cache_misses = f
            .cache
            .get_or_create(&CacheLabels { result: "miss" })
            .clone();
        let hot = HotSeries {
            batch_steps,
            direct_steps,
            batch_seconds,
            direct_seconds,
            cache_hits,
            cache_misses,
            workflow_schedule_to_start: seconds_histogram(),
            timer_lateness: seconds_histogram(),
        };
        let r = &mut registry;
        r.register(
            "workflows_started",
            "Runs whose first step ran, by workflow type",
            f.workflows_started.clone(),
        );
        r.register(
            "workflows_closed",
            "Runs closed, by workflow type and status",
            f.workflows_closed.clone(),
        );
        r.register(
            "steps",
            "Runs stepped, by path (batch or direct)",
            f.steps.clone(),
        );
        r.register(
            "step_duration_seconds",
            "Time to step and write a batch or a direct step",
            f.step_seconds.clone(),
        );
        r.register(
            "cache_lookups",
            "Sticky-cache lookups of a run's orchestrator, by result (hit or miss)",
            f.cache.clone(),
        );
        r.register(
            "cache_evictions",
            "Orchestrators evicted from the sticky cache",
            f.cache_evictions.clone(),
        );
        r.register(
            "queries_answered",
            "Queries this process answered, by where from (cache: a live orchestrator; replay: one rebuilt from history)",
            f.queries.clone(),
        );
        r.register(
            "replays",
            "Histories replayed to rebuild an orchestrator (a cache miss)",
            f.replays.clone(),
        );
        r.register(
            "replay_events",
            "Events replayed to rebuild an orchestrator",
            f.replay_events.clone(),
        );
        r.register(
            "runs_parked",
            "Runs parked, by reason kind",
            f.parked.clone(),
        );
        r.register(
            "failed_batches",
            "Step batches that failed (their runs are claimed again)",
            f.failed_batches.clone(),
        );
        r.register(
            "activity_attempts",
            "Activity attempts, by activity type, task queue and outcome",
            f.attempts.clone(),
        );
        r.register(
            "activity_attempt_duration_seconds",
            "Time an activity attempt ran",
            f.attempt_seconds.clone(),
        );
        r.register(
            "local_activity_attempts",
            "Local activity attempts run by engines, by activity type and outcome (completed, failed, timed_out)",
            f.local_attempts.clone(),
        );
        r.register(
            "local_activity_attempt_duration_seconds",
            "Time a local activity attempt ran",
            f.local_attempt_seconds.clone(),
        );
        r.register(
            "activity_schedule_to_start_seconds",
            "Time an activity attempt waited from due to claimed, by task queue",
            f.schedule_to_start.clone(),
        );
        r.register(
            "workflow_schedule_to_start_seconds",
            "Time a run waited from ready (an input arrived, a timer came due) to claimed by a batch",
            hot.workflow_schedule_to_start.clone(),
        );
        r.register(
            "timer_lateness_seconds",
            "How long after it was due a timer was claimed to fire",
            hot.timer_lateness.clone(),
        );
        r.register(
            "activity_timeouts",
            "Activity attempts or activities that ran out of time, by activity type, task queue and kind (start_to_close, heartbeat, schedule_to_close)",
            f.timeouts.clone(),
        );
        r.register(
            "nondeterminism",
            "Steps whose code did not reproduce its history, by workflow type and code (ND01..)",
            f.nondeterminism.clone(),
        );
        r.register(
            "input_changes",
            "Replayed decisions the code gave another input than history holds (ND08), reported and run on with the recorded input, by workflow type",
            f.input_changes.clone(),
        );
        r.register(
            "listen_reconnects",
            "LISTEN connections re-established after a loss, by channel",
            f.listen_reconnects.clone(),
        );
        r.register(
            "pool_connections",
            "Database pool connections, by state (in_use or idle), at the scrape",
            f.pool_connections.clone(),
        );
        r.register(
            "ready_runs",
            "Runs with work due and not claimed, by task queue (sampled)",
            f.ready_runs.clone(),
        );
        r.register(
            "oldest_ready_run_age_seconds",
            "How long the oldest ready run has waited, by task queue (sampled)",
            f.oldest_ready_run_seconds.clone(),
        );
        r.register(
            "ready_activities",
            "Activity tasks due and not leased, by task queue (sampled)",
            f.ready_activities.clone(),
        );
        r.register(
            "oldest_ready_activity_age_seconds",
            "How long the oldest ready activity task has waited, by task queue (sampled)",
            f.oldest_ready_activity_seconds.clone(),
        );
        r.register(
            "parked_runs",
            "Open runs parked now, by reason kind (sampled)",
            f.parked_runs.clone(),
        );
        r.register(
            "limit_running_attempts",
            "Attempts running under each fleet-wide limit, by scope and name (sampled)",
            f.limit_running.clone(),
        );
        r.register(
            "limit_waiting_attempts",
            "Due attempts waiting under each fleet-wide limit, by scope and name (sampled)",
            f.limit_waiting.clone(),
        );
        r.register(
            "limit_tokens",
            "Tokens in each rate limit's bucket, by scope and name (sampled)",
            f.limit_tokens.clone(),
        );
        r.register(
            "gauge_samples",
            "Times this process sampled the shared gauges (one process at a time does)",
            f.gauges_sampled.clone(),
        );
        Metrics(Arc::new(Families { registry, hot, ..f }))
    }

    /// The metrics in the OpenMetrics text format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }

    pub(crate) fn run_started(&self, workflow_type: &str) {
        self.workflow(workflow_type, |series| {
            series.started.inc();
        });
    }

    pub(crate) fn run_closed(&self, workflow_type: &str, status: RunState) {
        let Some(index) = closed_index(status) else {
            return;
        };
        self.workflow(workflow_type, |series| {
            series.closed[index].inc();
        });
    }

    fn workflow(&self, workflow_type: &str, use_it: impl FnOnce(&WorkflowSeries)) {
        let f = &self.0;
        let make = || WorkflowSeries {
            started: f
                .workflows_started
                .get_or_create(&WorkflowLabels {
                    workflow_type: workflow_type.to_string(),
                })
                .clone(),
            closed: CLOSED.map(|status| {
                f.workflows_closed
                    .get_or_create(&ClosedLabels {
                        workflow_type: workflow_type.to_string(),
                        status: status.as_str().to_string(),
                    })
                    .clone()
            }),
        };
        f.workflows.with(workflow_type, make, use_it);
    }

    pub(crate) fn stepped(&self, path: StepPath, runs: usize, took: Duration) {
        let hot = &self.0.hot;
        let (steps, seconds) = match path {
            StepPath::batch => (&hot.batch_steps, &hot.batch_seconds),
            StepPath::direct => (&hot.direct_steps, &hot.direct_seconds),
        };
        steps.inc_by(runs as u64);
        seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn cache_lookup(&self, hit: bool) {
        let hot = &self.0.hot;
        if hit {
            &hot.cache_hits
        } else {
            &hot.cache_misses
        }
        .inc();
    }

    pub(crate) fn cache_eviction(&self) {
        self.0.cache_evictions.inc();
    }

    pub(crate) fn query_answered(&self, cached: bool) {
        let source = if cached { "cache" } else { "replay" };
        self.0.queries.get_or_create(&QueryLabels { source }).inc();
    }

    pub(crate) fn replayed(&self, events: usize) {
        self.0.replays.inc();
        self.0.replay_events.observe(events as f64);
    }

    pub(crate) fn parked(&self, reason: &str) {
        let reason = ParkKind::of(reason);
        self.0.parked.get_or_create(&ParkLabels { reason }).inc();
    }

    pub(crate) fn failed_batch(&self) {
        self.0.failed_batches.inc();
    }

    pub(crate) fn attempt(
        &self,
        activity_type: &str,
        task_queue: &str,
        outcome: AttemptOutcome,
        took: Duration,
    ) {
        let f = &self.0;
        self.queue(task_queue, |queue| {
            let make = || ActivitySeries {
                attempts: AttemptOutcome::ALL.map(|outcome| {
                    f.attempts
                        .get_or_create(&AttemptLabels {
                            activity_type: activity_type.to_string(),
                            task_queue: task_queue.to_string(),
                            outcome,
                        })
                        .clone()
                }),
                seconds: f
                    .attempt_seconds
                    .get_or_create(&ActivityLabels {
                        activity_type: activity_type.to_string(),
                        task_queue: task_queue.to_string(),
                    })
                    .clone(),
            };
            queue.activities.with(activity_type, make, |series| {
                series.attempts[outcome as usize].inc();
                series.seconds.observe(took.as_secs_f64());
            });
        });
    }

    /// A local activity's attempt ran for `took` and ended so. Labelled by the types the
    /// engine registers, so the series are bounded by code.
    pub(crate) fn local_attempt(
        &self,
        activity_type: &str,
        outcome: LocalAttemptOutcome,
        took: Duration,
    ) {
        let f = &self.0;
        let activity_type = activity_type.to_string();
        f.local_attempt_seconds
            .get_or_create(&LocalActivityLabels {
                activity_type: activity_type.clone(),
            })
            .observe(took.as_secs_f64());
        f.local_attempts
            .get_or_create(&LocalAttemptLabels {
                activity_type,
                outcome,
            })
            .inc();
    }

    pub(crate) fn schedule_to_start(&self, task_queue: &str, seconds: f64) {
        self.queue(task_queue, |queue| {
            queue.schedule_to_start.observe(seconds.max(0.0));
        });
    }

    fn queue(&self, task_queue: &str, use_it: impl FnOnce(&QueueSeries)) {
        let f = &self.0;
        let make = || QueueSeries {
            schedule_to_start: f
                .schedule_to_start
                .get_or_create(&QueueLabels {
                    task_queue: task_queue.to_string(),
                })
                .clone(),
            activities: Keyed::default(),
        };
        f.queues.with(task_queue, make, use_it);
    }

    /// A run claimed by a batch `waited` after it became ready, with timers `late`.
    pub(crate) fn claimed_run(&self, waited: Duration, late: &[Duration]) {
        let hot = &self.0.hot;
        hot.workflow_schedule_to_start.observe(waited.as_secs_f64());
        for late in late {
            hot.timer_lateness.observe(late.as_secs_f64());
        }
    }

    pub(crate) fn timed_out(&self, activity_type: &str, task_queue: &str, kind: TimeoutKind) {
        let kind = match kind {
            TimeoutKind::StartToClose => "start_to_close",
            TimeoutKind::Heartbeat => "heartbeat",
            TimeoutKind::ScheduleToClose => "schedule_to_close",
            TimeoutKind::ScheduleToStart => "schedule_to_start",
        };
        self.0
            .timeouts
            .get_or_create(&TimeoutLabels {
                activity_type: activity_type.to_string(),
                task_queue: task_queue.to_string(),
                kind,
            })
            .inc();
    }

    pub(crate) fn nondeterminism(&self, workflow_type: &str, code: &'static str) {
        self.0
            .nondeterminism
            .get_or_create(&NondeterminismLabels {
                workflow_type: workflow_type.to_string(),
                code,
            })
            .inc();
    }

    pub(crate) fn input_changed(&self, workflow_type: &str) {
        self.0
            .input_changes
            .get_or_create(&WorkflowLabels {
                workflow_type: workflow_type.to_string(),
            })
            .inc();
    }

    pub(crate) fn listen_reconnected(&self, channel: &'static str) {
        self.0
            .listen_reconnects
            .get_or_create(&ChannelLabels { channel })
            .inc();
    }

    pub(crate) fn pool(&self, in_use: u32, idle: usize) {
        let set = |result, value: i64| {
            self.0
                .pool_connections
                .get_or_create(&CacheLabels { result })
                .set(value);
        };
        set("in_use", i64::from(in_use));
        set("idle", i64::try_from(idle).unwrap_or(i64::MAX));
    }

    /// Replaces the sampled gauges with a new sample (queues absent from it drop to zero).
    pub(crate) fn sampled(&self, sample: &gauges::Sample) {
        let f = &self.0;
        f.ready_runs.clear();
        f.oldest_ready_run_seconds.clear();
        f.ready_activities.clear();
        f.oldest_ready_activity_seconds.clear();
        let set = |queues: &[gauges::QueueSample],
                   ready: &Family<QueueLabels, Gauge>,
                   oldest: &AgeGauges| {
            for q in queues {
                let labels = QueueLabels {
                    task_queue: q.task_queue.clone(),
                };
                ready.get_or_create(&labels).set(q.ready);
                oldest.get_or_create(&labels).set(q.oldest_age_seconds);
            }
        };
        set(&sample.runs, &f.ready_runs, &f.oldest_ready_run_seconds);
        set(
            &sample.activities,
            &f.ready_activities,
            &f.oldest_ready_activity_seconds,
        );
        for kind in ParkKind::ALL {
            let count = sample
                .parked
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| *n)
                .sum();
            f.parked_runs
                .get_or_create(&ParkLabels { reason: kind })
                .set(count);
        }
        f.limit_running.clear();
        f.limit_waiting.clear();
        f.limit_tokens.clear();
        for usage in &sample.limits {
            let labels = LimitLabels {
                scope: usage.scope.kind(),
                name: usage.scope.name().to_string(),
            };
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            f.limit_running
                .get_or_create(&labels)
                .set(count(usage.running));
            f.limit_waiting
                .get_or_create(&labels)
                .set(count(usage.waiting));
            if let Some(tokens) = usage.tokens {
                f.limit_tokens.get_or_create(&labels).set(tokens);
            }
        }
        f.gauges_sampled.inc();
    }
}

use super::gauges;

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
