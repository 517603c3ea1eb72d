//! Series handles kept per workflow type and per (task queue, activity type), so the calls made
//! for every start, close and attempt touch atomics only.
//!
//! A `Family` lookup builds its label set (a `String` per label) and hashes it with SipHash on
//! every call; on W2 (ten activities per workflow) that was most of what metrics cost a
//! workflow. Here the label strings are hashed once per call with foldhash and compared in
//! place: nothing is allocated after a type's first call. Keys come from the code (type and
//! queue names), never from payloads, so the maps stay as small as the families they mirror.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// Values kept by a string key, made on first use.
pub(super) struct Keyed<V> {
    map: RwLock<HashMap<Box<str>, V, foldhash::fast::FixedState>>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            map: RwLock::new(HashMap::with_hasher(foldhash::fast::FixedState::default())),
        }
    }
}

impl<V> Keyed<V> {
    /// Calls `use_it` with the value under `key`, made by `make` if there is none yet.
    pub(super) fn with<R>(
        &self,
        key: &str,
        make: impl FnOnce() -> V,
        use_it: impl FnOnce(&V) -> R,
    ) -> R {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still whole.
        if let Some(value) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return use_it(value);
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let value = map.entry(key.into()).or_insert_with(make);
        use_it(value)
    }
}

/// The series of one workflow type.
pub(super) struct WorkflowSeries {
    pub(super) started: Counter,
    /// Indexed by the metrics' `closed_index`.
    pub(super) closed: [Counter; 6],
}

/// The series of one activity type on one task queue.
pub(super) struct ActivitySeries {
    /// Indexed by `AttemptOutcome as usize`.
    pub(super) attempts: [Counter; 5],
    pub(super) seconds: Histogram,
}

/// The series of one task queue.
pub(super) struct QueueSeries {
    pub(super) schedule_to_start: Histogram,
    pub(super) activities: Keyed<ActivitySeries>,
}
