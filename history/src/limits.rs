//! Size limits that decoding and encoding enforce, so bad input is an error, not an outage.

/// Upper bounds on what a history may hold. The defaults suit production; raise them
/// deliberately, since every limit protects memory somewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest encoded payload (workflow and activity inputs and results), in bytes.
    pub max_payload_bytes: usize,
    /// Largest encoded event, in bytes (its payloads included).
    pub max_event_bytes: usize,
    /// Most events one run's history may hold.
    pub max_events: u64,
    /// Largest encoded history (a whole recorded-history file), in bytes.
    pub max_history_bytes: u64,
}

impl Limits {
    /// The defaults: 2 MiB payloads, 4 MiB events, 200,000 events, 512 MiB histories.
    pub const DEFAULT: Limits = Limits {
        max_payload_bytes: 2 << 20,
        max_event_bytes: 4 << 20,
        max_events: 200_000,
        max_history_bytes: 512 << 20,
    };

    /// The defaults with another payload limit.
    pub const fn with_max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// The defaults with another event limit.
    pub const fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// The defaults with another event-count limit.
    pub const fn with_max_events(mut self, events: u64) -> Self {
        self.max_events = events;
        self
    }

    /// The defaults with another history-size limit.
    pub const fn with_max_history_bytes(mut self, bytes: u64) -> Self {
        self.max_history_bytes = bytes;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
