//! `EngineOptions`: how an engine process behaves, and the build it names itself by.

use std::sync::OnceLock;
use std::time::Duration;

use reprise_sdk::InputChanges;

/// How an engine process behaves.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// This process's name in logs (unique per process).
    pub owner: String,
    /// Identifies the code this engine runs. A run is parked with the build that parked it,
    /// and an engine of another build takes it back on its own (at start and every
    /// [`EngineOptions::parked_sweep`]), since its code may be the fix; an engine of the same
    /// build never does (it would only park it again). Default: [`default_build`] — the
    /// `REPRISE_BUILD` environment variable, or else a hash of the executable. Two engines
    /// in one process share that default: give each its own build if they run different
    /// code (see `docs/versioning.md`, "Builds").
    pub build: String,
    /// The workflow task queues it serves (`StartOptions::task_queue`, a child's queue): it
    /// claims only runs on these, and of types its registry knows; any other run waits,
    /// visible, for an engine that serves its queue and knows its type. Default: `default`.
    pub queues: Vec<String>,
    /// Runs stepped in one transaction, at most.
    pub batch_size: i64,
    /// Batches in flight at once, each on its own connection.
    pub concurrent_batches: usize,
    /// Longest wait between polls when no notification comes.
    pub idle_poll: Duration,
    /// Live orchestrators kept between steps.
    pub cache_capacity: usize,
    /// How often to look for runs that another build parked and this one may take back
    /// (also done once at start, which is when a fixed build usually arrives).
    pub parked_sweep: Duration,
    /// Whether the run a lone notification names (a start, one delivered input) is stepped
    /// directly: a keyed read, then one statement (see `docs/ARCHITECTURE.md`, "A direct
    /// step"). Off, every step goes through a batch: the same histories, more round trips.
    pub direct_steps: bool,
    /// How often the process that samples the shared gauges (ready queues, parked runs; one
    /// process at a time) samples them.
    pub gauge_interval: Duration,
    /// What replaying a run does when the code gives a recorded decision another input (ND08;
    /// runs recorded under the replay rule `COMPARE_INPUTS` only). Default: report it — a
    /// warning and `reprise_input_changes_total` — and go on with the recorded input, since
    /// an input may change between versions on purpose. `InputChanges::Fail` parks the run
    /// as any other nondeterminism instead.
    pub input_changes: InputChanges,
    /// How long a query for a run this engine does not cache waits before this engine
    /// answers it by replaying the run's history: time for the engine that caches the run
    /// to answer it from memory. 0 when this is the only engine.
    pub query_replay_delay: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            owner: format!(
                "engine-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            build: default_build(),
            queues: vec![reprise_history::TaskQueue::default().to_string()],
            batch_size: 64,
            concurrent_batches: 4,
            idle_poll: Duration::from_secs(1),
            cache_capacity: 10_000,
            parked_sweep: Duration::from_secs(10),
            direct_steps: true,
            gauge_interval: Duration::from_secs(15),
            input_changes: InputChanges::Report,
            query_replay_delay: Duration::from_millis(20),
        }
    }
}

/// The environment variable that names the build, when set (a release version, a commit).
const BUILD_ENV: &str = "REPRISE_BUILD";

/// The build an engine names itself by unless told: `REPRISE_BUILD` if set and not empty,
/// else [`executable_build`].
pub fn default_build() -> String {
    match std::env::var(BUILD_ENV) {
        Ok(build) if !build.trim().is_empty() => build.trim().to_string(),
        _ => executable_build(),
    }
}

/// A hash of this executable: processes running the same binary share it. Reading and hashing
/// the binary takes a noticeable moment for a large one (about 0.1 s for 80 MB), so it is done
/// once per process and kept.
pub fn executable_build() -> String {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD
        .get_or_init(|| {
            std::env::current_exe()
                .and_then(std::fs::read)
                .map(|bytes| blake3::hash(&bytes).to_hex()[..16].to_string())
                .unwrap_or_else(|_| "unknown".to_string())
        })
        .clone()
}
