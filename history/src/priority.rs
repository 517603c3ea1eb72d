//! How urgent work is: a run's priority, given at its start, and an activity call's, which
//! overrides its run's. Claims take due work of a higher priority first.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A priority from 1 (lowest) to 9 (highest); 5 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// The lowest priority.
    pub const LOWEST: Priority = Priority(1);
    /// The priority of work given none.
    pub const DEFAULT: Priority = Priority(5);
    /// The highest priority.
    pub const HIGHEST: Priority = Priority(9);

    /// A priority from 1 to 9; anything else is refused with [`Error::InvalidPriority`].
    pub fn new(value: i64) -> Result<Priority> {
        match u8::try_from(value) {
            Ok(v) if (Self::LOWEST.0..=Self::HIGHEST.0).contains(&v) => Ok(Priority(v)),
            _ => Err(Error::InvalidPriority(value)),
        }
    }

    /// Its value, from 1 to 9.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::DEFAULT
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.0)
    }
}

/// Stored bytes out of range do not decode: a priority is valid wherever it exists.
impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = u8::deserialize(deserializer)?;
        Priority::new(i64::from(value)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_one_to_nine() {
        assert_eq!(Priority::new(1).unwrap(), Priority::LOWEST);
        assert_eq!(Priority::new(9).unwrap(), Priority::HIGHEST);
        assert_eq!(Priority::default().get(), 5);
        for bad in [0, 10, -1, 256, i64::MAX, i64::MIN] {
            assert!(
                matches!(Priority::new(bad), Err(Error::InvalidPriority(v)) if v == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn out_of_range_bytes_do_not_decode() {
        assert_eq!(serde_json::from_str::<Priority>("7").unwrap().get(), 7);
        let err = serde_json::from_str::<Priority>("12").unwrap_err();
        assert!(
            err.to_string()
                .contains("from 1 (lowest) to 9 (highest), not 12"),
            "{err}"
        );
    }
}
