//! `Timestamp`: the instant an event was recorded, in microseconds since the Unix epoch.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant with microsecond precision (PostgreSQL's `timestamptz` precision).
///
/// Binary encodings store the integer; human-readable ones (JSON) an RFC 3339 string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_unix_micros(self) -> i64 {
        self.0
    }

    /// A system time as a timestamp (saturating outside ±292,000 years). For activities and
    /// tools: workflow code reads `WorkflowContext::now`, never a clock.
    pub fn from_system_time(time: std::time::SystemTime) -> Timestamp {
        match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => Timestamp(micros(after)),
            Err(before) => Timestamp(micros(before.duration()).saturating_neg()),
        }
    }

    /// This instant plus a duration, saturating at the end of representable time.
    pub fn saturating_add(self, d: std::time::Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(micros(d)))
    }

    /// The RFC 3339 form (`2026-11-22T14:16:45.123456Z`), if the instant is within chrono's range.
    pub fn to_rfc3339(self) -> Option<String> {
        chrono::DateTime::from_timestamp_micros(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }

    /// Parses an RFC 3339 string; sub-microsecond digits are truncated.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp(t.timestamp_micros()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_rfc3339() {
            Some(s) => f.write_str(&s),
            None => write!(f, "{}us", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            let text = self.to_rfc3339().ok_or_else(|| {
                serde::ser::Error::custom(format!("timestamp {}us is out of range", self.0))
            })?;
            serializer.serialize_str(&text)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Timestamp::parse_rfc3339(&text).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not an RFC 3339 timestamp"))
            })
        } else {
            i64::deserialize(deserializer).map(Timestamp)
        }
    }
}

/// A duration in microseconds, saturating at `i64::MAX`.
fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_rfc3339() {
        let t = Timestamp::from_unix_micros(1_795_356_205_123_456);
        let text = t.to_rfc3339().unwrap();
        assert_eq!(text, "2026-11-22T14:03:25.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&text), Some(t));
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
    }

    #[test]
    fn system_times_before_and_after_the_epoch() {
        use std::time::{Duration, UNIX_EPOCH};
        let after = UNIX_EPOCH + Duration::from_micros(1_795_356_205_123_456);
        let before = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(
            Timestamp::from_system_time(after),
            Timestamp::from_unix_micros(1_795_356_205_123_456)
        );
        assert_eq!(
            Timestamp::from_system_time(before),
            Timestamp::from_unix_micros(-5)
        );
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        let t = Timestamp::from_unix_micros(i64::MAX);
        assert!(serde_json::to_string(&t).is_err());
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
