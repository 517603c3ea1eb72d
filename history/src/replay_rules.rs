//! `ReplayRules`: which replay rules a run was written under, recorded in its `WorkflowStarted`.
//!
//! How replay matches the code's decisions against history may grow stricter between
//! releases. A run records the rules its first event was written under, and every build
//! replays it by exactly those: a history written before a rule existed replays as it always
//! did, and a new rule applies to runs started after it (as temporalio/sdk-core records its
//! internal flags in history). A run records its rules once, at its start, so one run is never
//! replayed by two rule sets at two points of its history.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A set of replay rules (bit flags). Bits this build does not know are kept, so a run written
/// by a newer build is refused by [`ReplayRules::unknown`] rather than replayed by the wrong
/// rules.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplayRules(u64);

impl ReplayRules {
    /// No rules: what every run started before rules were recorded replays by.
    pub const NONE: ReplayRules = ReplayRules(0);

    /// A replayed decision's input (activity, child workflow, continue-as-new) is compared
    /// with the recorded one; a difference is reported (or fails the replay, when strict).
    pub const COMPARE_INPUTS: ReplayRules = ReplayRules(1);

    /// Every rule this build knows: what a run started now records.
    pub const CURRENT: ReplayRules = ReplayRules::COMPARE_INPUTS;

    /// Rules from their stored bits (unknown bits kept).
    pub const fn from_bits(bits: u64) -> ReplayRules {
        ReplayRules(bits)
    }

    /// The stored bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every rule in `other` is in `self`.
    pub const fn contains(self, other: ReplayRules) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no rule is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rules in `self` that this build does not know (empty when it knows them all).
    pub const fn unknown(self) -> ReplayRules {
        ReplayRules(self.0 & !ReplayRules::CURRENT.0)
    }
}

impl fmt::Debug for ReplayRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        if self.contains(ReplayRules::COMPARE_INPUTS) {
            set.entry(&format_args!("COMPARE_INPUTS"));
        }
        let unknown = self.unknown();
        if !unknown.is_empty() {
            set.entry(&format_args!("unknown {:#x}", unknown.0));
        }
        set.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_are_kept_and_named() {
        let newer = ReplayRules::from_bits(ReplayRules::CURRENT.bits() | 1 << 40);
        assert!(newer.contains(ReplayRules::COMPARE_INPUTS));
        assert_eq!(newer.unknown().bits(), 1 << 40);
        assert!(ReplayRules::CURRENT.unknown().is_empty());
        assert!(!ReplayRules::NONE.contains(ReplayRules::COMPARE_INPUTS));
        assert_eq!(
            format!("{newer:?}"),
            "{COMPARE_INPUTS, unknown 0x10000000000}"
        );
    }
}
