//! When a schedule fires: cron expressions and fixed intervals in a time zone, bounded by a
//! start and an end, minus excluded ranges, each firing delayed by a stable jitter.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use reprise_history::{ScheduleId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::cron::CronSpec;
use crate::error::SpecError;

/// A fixed interval: fires at every `offset + k * every` since the Unix epoch, so "every hour,
/// offset 15 minutes" fires at :15 past each hour whatever the time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "IntervalRecord", into = "IntervalRecord")]
pub struct IntervalSpec {
    /// Time between firings (at least one second).
    every: Duration,
    /// Where in each interval it fires (smaller than `every`).
    offset: Duration,
}

/// An interval as stored: checked again as it is read back.
#[derive(Serialize, Deserialize)]
struct IntervalRecord {
    #[serde(with = "millis")]
    every_ms: Duration,
    #[serde(with = "millis", default)]
    offset_ms: Duration,
}

impl TryFrom<IntervalRecord> for IntervalSpec {
    type Error = SpecError;
    fn try_from(record: IntervalRecord) -> Result<Self, SpecError> {
        IntervalSpec::new(record.every_ms, record.offset_ms)
    }
}

impl From<IntervalSpec> for IntervalRecord {
    fn from(spec: IntervalSpec) -> Self {
        IntervalRecord {
            every_ms: spec.every,
            offset_ms: spec.offset,
        }
    }
}

impl IntervalSpec {
    /// Every `every`, at `offset` into each interval.
    pub fn new(every: Duration, offset: Duration) -> Result<IntervalSpec, SpecError> {
        if every < Duration::from_secs(1) {
            return Err(SpecError::Interval(format!(
                "every {every:?} is shorter than one second"
            )));
        }
        if offset >= every {
            return Err(SpecError::Interval(format!(
                "offset {offset:?} is not shorter than the interval {every:?}"
            )));
        }
        micros(every)?;
        Ok(IntervalSpec { every, offset })
    }

    /// The time between firings.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Where in each interval it fires.
    pub fn offset(&self) -> Duration {
        self.offset
    }

    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let every = i128::try_from(self.every.as_micros())
            .ok()
            .filter(|e| *e > 0)?;
        let offset = i128::try_from(self.offset.as_micros()).ok()?;
        let since = i128::from(after.as_unix_micros()) - offset;
        let k = since.div_euclid(every) + 1;
        i64::try_from(offset + k * every)
            .ok()
            .map(Timestamp::from_unix_micros)
    }
}

/// A half-open range of time `[from, until)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// The first instant inside.
    pub from: Timestamp,
    /// The first instant after.
    pub until: Timestamp,
}

impl TimeRange {
    /// `[from, until)`; refused if it is empty.
    pub fn new(from: Timestamp, until: Timestamp) -> Result<TimeRange, SpecError> {
        if until <= from {
            return Err(SpecError::Range(format!(
                "the range {from} .. {until} ends before it starts"
            )));
        }
        Ok(TimeRange { from, until })
    }

    /// Whether `t` is inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.until
    }
}

/// An IANA time zone, by name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(Tz);

impl TimeZone {
    /// Coordinated Universal Time.
    pub const UTC: TimeZone = TimeZone(Tz::UTC);

    /// The zone named `name` (`Europe/Berlin`, `America/New_York`, `UTC`).
    pub fn named(name: &str) -> Result<TimeZone, SpecError> {
        name.trim()
            .parse::<Tz>()
            .map(TimeZone)
            .map_err(|_| SpecError::TimeZone {
                name: name.to_string(),
            })
    }

    /// Its IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        TimeZone::named(&name).map_err(serde::de::Error::custom)
    }
}

/// When a schedule fires. Its times are the union of its cron expressions (read in its time
/// zone) and its intervals, from `start_at` to `end_at` (both inclusive), minus the excluded
/// ranges. Each firing is then delayed by a jitter drawn from the schedule id and the time,
/// so every engine computes the same one.
///
/// Daylight-saving transitions, for cron expressions in a zone that has them (`croner`'s
/// rules, which follow Vixie cron): in the hour that is skipped in spring, a fixed time
/// (`30 2 * * *`) fires once at the first instant after the gap, and times of a wildcard or
/// step field (`*/15 * * * *`) in the gap do not happen; in the hour that repeats in autumn,
/// a fixed time fires once (the first pass), a wildcard or step one on both passes.
/// Intervals count real time and ignore the zone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Cron expressions.
    #[serde(default)]
    pub crons: Vec<CronSpec>,
    /// Fixed intervals.
    #[serde(default)]
    pub intervals: Vec<IntervalSpec>,
    /// The zone the cron expressions are read in.
    #[serde(default)]
    pub time_zone: TimeZone,
    /// The most a firing is delayed past its time (a stable draw per firing; keep it below
    /// the time between firings, or firings may start out of order).
    #[serde(rename = "jitter_ms", with = "millis", default)]
    pub jitter: Duration,
    /// No firing before it.
    #[serde(default)]
    pub start_at: Option<Timestamp>,
    /// No firing after it.
    #[serde(default)]
    pub end_at: Option<Timestamp>,
    /// Times that do not fire.
    #[serde(default)]
    pub exclude: Vec<TimeRange>,
}

/// How many excluded times in a row a search for the next time passes over before it gives
/// up (a range that excludes everything would otherwise loop for ever).
const MAX_EXCLUDED_IN_A_ROW: usize = 100_000;

impl ScheduleSpec {
    /// A spec of one cron expression, read in UTC.
    pub fn cron(expression: &str) -> Result<ScheduleSpec, SpecError> {
        Ok(ScheduleSpec {
            crons: vec![CronSpec::parse(expression)?],
            ..ScheduleSpec::default()
        })
    }

    /// A spec of one interval, at offset 0.
    pub fn every(every: Duration) -> Result<ScheduleSpec, SpecError> {
        Ok(ScheduleSpec {
            intervals: vec![IntervalSpec::new(every, Duration::ZERO)?],
            ..ScheduleSpec::default()
        })
    }

    /// The same spec, its cron expressions read in the zone named `name`.
    pub fn in_time_zone(mut self, name: &str) -> Result<ScheduleSpec, SpecError> {
        self.time_zone = TimeZone::named(name)?;
        Ok(self)
    }

    /// The same spec with a jitter.
    pub fn with_jitter(mut self, jitter: Duration) -> ScheduleSpec {
        self.jitter = jitter;
        self
    }

    /// Checks what a spec built field by field may get wrong: the range, the exclusions, the
    /// jitter.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let (Some(start), Some(end)) = (self.start_at, self.end_at)
            && end < start
        {
            return Err(SpecError::Range(format!(
                "the end {end} is before the start {start}"
            )));
        }
        for range in &self.exclude {
            TimeRange::new(range.from, range.until)?;
        }
        for interval in &self.intervals {
            IntervalSpec::new(interval.every, interval.offset)?;
        }
        micros(self.jitter)?;
        Ok(())
    }

    /// The first time strictly after `after` that the spec fires (before jitter), or `None`
    /// if it never fires again.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let mut after = match self.start_at {
            Some(start) if start > after => Timestamp::from_unix_micros(start.as_unix_micros() - 1),
            _ => after,
        };
        for _ in 0..MAX_EXCLUDED_IN_A_ROW {
            let next = self.next_of_any(after)?;
            if self.end_at.is_some_and(|end| next > end) {
                return None;
            }
            match self.exclude.iter().find(|range| range.contains(next)) {
                Some(range) => {
                    after = Timestamp::from_unix_micros(range.until.as_unix_micros() - 1)
                }
                None => return Some(next),
            }
        }
        None
    }

    /// The next `count` times strictly after `after` (before jitter).
    pub fn upcoming(&self, after: Timestamp, count: usize) -> Vec<Timestamp> {
        let mut times = Vec::with_capacity(count);
        let mut cursor = after;
        while times.len() < count {
            match self.next_after(cursor) {
                Some(t) => {
                    times.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        times
    }

    /// How long the firing scheduled for `at` waits past it: a stable draw in
    /// `[0, jitter]` from the schedule id and the time.
    pub fn jitter_for(&self, schedule_id: &ScheduleId, at: Timestamp) -> Duration {
        let span = u64::try_from(self.jitter.as_micros()).unwrap_or(u64::MAX);
        if span == 0 {
            return Duration::ZERO;
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(schedule_id.as_str().as_bytes());
        hasher.update(&at.as_unix_micros().to_le_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        Duration::from_micros(u64::from_le_bytes(first) % span.saturating_add(1))
    }

    fn next_of_any(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = to_zoned(after, self.time_zone.0);
        let crons = self.crons.iter().filter_map(|cron| {
            let zoned = zoned.as_ref()?;
            cron.next_after(*zoned)
                .map(|t| Timestamp::from_unix_micros(t.timestamp_micros()))
        });
        let intervals = self.intervals.iter().filter_map(|i| i.next_after(after));
        crons.chain(intervals).min()
    }
}

fn to_zoned(t: Timestamp, zone: Tz) -> Option<DateTime<Tz>> {
    DateTime::<Utc>::from_timestamp_micros(t.as_unix_micros()).map(|t| t.with_timezone(&zone))
}

fn micros(d: Duration) -> Result<i64, SpecError> {
    i64::try_from(d.as_micros()).map_err(|_| SpecError::Interval(format!("{d:?} is out of range")))
}

/// Durations as whole milliseconds in JSON.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Timestamp {
        Timestamp::parse_rfc3339(rfc3339).unwrap()
    }

    fn times(spec: &ScheduleSpec, after: &str, count: usize) -> Vec<String> {
        spec.upcoming(at(after), count)
            .into_iter()
            .map(|t| t.to_string())
            .collect()
    }

    #[test]
    fn a_cron_fires_at_its_times_in_utc() {
        let spec = ScheduleSpec::cron("*/15 * * * *").unwrap();
        assert_eq!(
            times(&spec, "2026-12-01T10:07:00Z", 3),
            [
                "2026-12-01T10:15:00.000000Z",
                "2026-12-01T10:30:00.000000Z",
                "2026-12-01T10:45:00.000000Z"
            ]
        );
    }

    #[test]
    fn next_after_is_strict() {
        let spec = ScheduleSpec::cron("0 * * * *").unwrap();
        assert_eq!(
            times(&spec, "2026-12-01T10:00:00Z", 1),
            ["2026-12-01T11:00:00.000000Z"]
        );
    }

    #[test]
    fn an_interval_fires_at_its_offset() {
        let spec = ScheduleSpec {
            intervals: vec![
                IntervalSpec::new(Duration::from_secs(3600), Duration::from_secs(900)).unwrap(),
            ],
            ..ScheduleSpec::default()
        };
        assert_eq!(
            times(&spec, "2026-12-01T10:15:00Z", 2),
            ["2026-12-01T11:15:00.000000Z", "2026-12-01T12:15:00.000000Z"]
        );
        assert!(IntervalSpec::new(Duration::ZERO, Duration::ZERO).is_err());
        assert!(IntervalSpec::new(Duration::from_secs(60), Duration::from_secs(60)).is_err());
        assert!(serde_json::from_str::<IntervalSpec>(r#"{"every_ms":0}"#).is_err());
    }

    #[test]
    fn crons_and_intervals_merge_in_order() {
        let mut spec = ScheduleSpec::cron("30 * * * *").unwrap();
        spec.intervals
            .push(IntervalSpec::new(Duration::from_secs(3600), Duration::ZERO).unwrap());
        assert_eq!(
            times(&spec, "2026-12-01T10:00:00Z", 3),
            [
                "2026-12-01T10:30:00.000000Z",
                "2026-12-01T11:00:00.000000Z",
                "2026-12-01T11:30:00.000000Z"
            ]
        );
    }

    #[test]
    fn start_end_and_exclusions_bound_the_times() {
        let mut spec = ScheduleSpec::cron("0 * * * *").unwrap();
        spec.start_at = Some(at("2026-12-01T12:00:00Z"));
        spec.end_at = Some(at("2026-12-01T16:00:00Z"));
        spec.exclude
            .push(TimeRange::new(at("2026-12-01T13:00:00Z"), at("2026-12-01T15:00:00Z")).unwrap());
        assert_eq!(
            times(&spec, "2026-12-01T00:00:00Z", 10),
            [
                "2026-12-01T12:00:00.000000Z",
                "2026-12-01T15:00:00.000000Z",
                "2026-12-01T16:00:00.000000Z"
            ]
        );
        spec.end_at = Some(at("2026-12-01T11:00:00Z"));
        assert!(spec.validate().is_err());
    }

    #[test]
    fn a_named_zone_moves_the_wall_clock() {
        let spec = ScheduleSpec::cron("0 9 * * *")
            .unwrap()
            .in_time_zone("Europe/Berlin")
            .unwrap();
        // Berlin is UTC+1 in winter, UTC+2 in summer.
        assert_eq!(
            times(&spec, "2026-12-01T00:00:00Z", 1),
            ["2026-12-01T08:00:00.000000Z"]
        );
        assert_eq!(
            times(&spec, "2026-07-01T00:00:00Z", 1),
            ["2026-07-01T07:00:00.000000Z"]
        );
        assert!(matches!(
            ScheduleSpec::default().in_time_zone("Mars/Olympus"),
            Err(SpecError::TimeZone { .. })
        ));
    }

    #[test]
    fn spring_forward_fires_a_fixed_time_once_after_the_gap_and_skips_wildcards_in_it() {
        // New York skips 02:00-03:00 local on 2026-03-08 (07:00 UTC).
        let fixed = ScheduleSpec::cron("30 2 * * *")
            .unwrap()
            .in_time_zone("America/New_York")
            .unwrap();
        assert_eq!(
            times(&fixed, "2026-03-07T12:00:00Z", 3),
            [
                "2026-03-08T07:00:00.000000Z", // 03:00 EDT: the first instant after the gap
                "2026-03-09T06:30:00.000000Z", // 02:30 EDT
                "2026-03-10T06:30:00.000000Z",
            ]
        );
        let every_half_hour = ScheduleSpec::cron("0,30 * * * *")
            .unwrap()
            .in_time_zone("America/New_York")
            .unwrap();
        assert_eq!(
            times(&every_half_hour, "2026-03-08T06:00:00Z", 3),
            [
                "2026-03-08T06:30:00.000000Z", // 01:30 EST
                "2026-03-08T07:00:00.000000Z", // 03:00 EDT; 02:00 and 02:30 do not exist
                "2026-03-08T07:30:00.000000Z",
            ]
        );
    }

    #[test]
    fn fall_back_fires_a_fixed_time_once_and_wildcards_on_both_passes() {
        // New York repeats 01:00-02:00 local on 2026-11-01 (05:00-07:00 UTC).
        let fixed = ScheduleSpec::cron("30 1 * * *")
            .unwrap()
            .in_time_zone("America/New_York")
            .unwrap();
        assert_eq!(
            times(&fixed, "2026-10-31T12:00:00Z", 2),
            [
                "2026-11-01T05:30:00.000000Z", // 01:30 EDT, the first pass only
                "2026-11-02T06:30:00.000000Z", // 01:30 EST
            ]
        );
        let half_hourly = ScheduleSpec::cron("0,30 1 * * *")
            .unwrap()
            .in_time_zone("America/New_York")
            .unwrap();
        assert_eq!(
            times(&half_hourly, "2026-10-31T12:00:00Z", 4),
            [
                "2026-11-01T05:00:00.000000Z",
                "2026-11-01T05:30:00.000000Z",
                "2026-11-01T06:00:00.000000Z",
                "2026-11-01T06:30:00.000000Z",
            ]
        );
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let spec = ScheduleSpec::cron("* * * * *")
            .unwrap()
            .with_jitter(Duration::from_secs(10));
        let id = ScheduleId::new("s").unwrap();
        let t = at("2026-12-01T10:00:00Z");
        assert_eq!(spec.jitter_for(&id, t), spec.jitter_for(&id, t));
        let draws: Vec<Duration> = (0..100)
            .map(|i| spec.jitter_for(&id, Timestamp::from_unix_micros(i * 60_000_000)))
            .collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(10)));
        assert!(draws.iter().any(|d| *d != draws[0]), "jitter never varies");
        assert_eq!(ScheduleSpec::default().jitter_for(&id, t), Duration::ZERO);
    }

    #[test]
    fn a_spec_round_trips_through_json() {
        let mut spec = ScheduleSpec::cron("0 9 * * MON-FRI")
            .unwrap()
            .in_time_zone("Europe/Berlin")
            .unwrap()
            .with_jitter(Duration::from_secs(30));
        spec.intervals
            .push(IntervalSpec::new(Duration::from_secs(600), Duration::from_secs(60)).unwrap());
        spec.exclude
            .push(TimeRange::new(at("2026-12-24T00:00:00Z"), at("2026-12-27T00:00:00Z")).unwrap());
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["time_zone"], "Europe/Berlin");
        assert_eq!(json["jitter_ms"], 30_000);
        assert_eq!(json["intervals"][0]["every_ms"], 600_000);
        let back: ScheduleSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }
}
