//! Cron expressions: parsed once by `croner`, with errors that say which field is wrong.

use std::fmt;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

use crate::error::SpecError;

/// One field of a cron expression, for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronField {
    /// Seconds (the first of six fields).
    Second,
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Day of the month.
    DayOfMonth,
    /// Month.
    Month,
    /// Day of the week.
    DayOfWeek,
}

impl CronField {
    /// The fields of an expression with `count` fields, in order.
    fn of(count: usize) -> &'static [CronField] {
        const FIVE: [CronField; 5] = [
            CronField::Minute,
            CronField::Hour,
            CronField::DayOfMonth,
            CronField::Month,
            CronField::DayOfWeek,
        ];
        const SIX: [CronField; 6] = [
            CronField::Second,
            CronField::Minute,
            CronField::Hour,
            CronField::DayOfMonth,
            CronField::Month,
            CronField::DayOfWeek,
        ];
        if count == 6 { &SIX } else { &FIVE }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Second => "second",
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day of month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day of week",
        })
    }
}

/// A cron expression: five fields (minute, hour, day of month, month, day of week), or six
/// with seconds first; names (`MON`, `JAN`), ranges, steps, lists, `L`, `W`, `#` and the
/// aliases `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`. Day of week 0 and 7 are
/// Sunday. When both day fields are restricted, a day matching either fires (Vixie cron).
#[derive(Clone)]
pub struct CronSpec {
    expression: String,
    cron: Cron,
}

impl CronSpec {
    /// Parses an expression. A bad one is refused with the field, its column (0-based, in
    /// characters) and the reason.
    pub fn parse(expression: &str) -> Result<CronSpec, SpecError> {
        let cron = parse_cron(expression).map_err(|reason| locate(expression, reason))?;
        // An expression that can never match (`0 0 30 2 *`) would be a schedule that never
        // fires: refuse it now rather than let it sit silent.
        let probe = Utc
            .timestamp_opt(946_684_800, 0)
            .single()
            .map(|t| t.with_timezone(&Tz::UTC));
        if let Some(probe) = probe
            && cron.find_next_occurrence(&probe, false).is_err()
        {
            return Err(SpecError::Cron {
                expression: expression.to_string(),
                field: None,
                column: 0,
                reason: "the expression matches no date".to_string(),
            });
        }
        Ok(CronSpec {
            expression: expression.trim().to_string(),
            cron,
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expression
    }

    /// The first time strictly after `after` that the expression matches in `zone`.
    pub(crate) fn next_after(&self, after: DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| e.to_string())
}

/// Finds the field that makes `expression` invalid: the first field that, replaced by `*`,
/// lets the expression parse. `croner` says what is wrong but not where.
fn locate(expression: &str, reason: String) -> SpecError {
    let fields: Vec<(usize, &str)> = field_spans(expression);
    let refuse = |field, column, reason| SpecError::Cron {
        expression: expression.to_string(),
        field,
        column,
        reason,
    };
    let starts_alias = expression.trim_start().starts_with('@');
    if !(starts_alias || fields.len() == 5 || fields.len() == 6) {
        return refuse(
            None,
            0,
            format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds \
                 first), found {}",
                fields.len()
            ),
        );
    }
    for (index, &(column, _)) in fields.iter().enumerate() {
        let replaced: Vec<&str> = fields
            .iter()
            .enumerate()
            .map(|(i, &(_, text))| if i == index { "*" } else { text })
            .collect();
        if parse_cron(&replaced.join(" ")).is_ok() {
            let field = CronField::of(fields.len()).get(index).copied();
            return refuse(field, column, reason);
        }
    }
    refuse(None, 0, reason)
}

/// Each whitespace-separated field with its column in characters.
fn field_spans(expression: &str) -> Vec<(usize, &str)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (column, (byte, c)) in expression.char_indices().enumerate() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some((column, byte)),
            (true, Some((col, from))) => {
                spans.push((col, &expression[from..byte]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some((col, from)) = start {
        spans.push((col, &expression[from..]));
    }
    spans
}

impl fmt::Debug for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronSpec").field(&self.expression).finish()
    }
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl Eq for CronSpec {}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl std::str::FromStr for CronSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        CronSpec::parse(s)
    }
}

impl Serialize for CronSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.expression)
    }
}

impl<'de> Deserialize<'de> for CronSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CronSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(expression: &str) -> (Option<CronField>, usize, String) {
        match CronSpec::parse(expression) {
            Err(SpecError::Cron {
                field,
                column,
                reason,
                ..
            }) => (field, column, reason),
            other => panic!("{expression:?} gave {other:?}"),
        }
    }

    #[test]
    fn five_and_six_fields_and_aliases_parse() {
        for ok in [
            "* * * * *",
            "0 */5 * * * *",
            "@daily",
            "0 9 * * MON-FRI",
            "0 0 L * *",
        ] {
            assert!(CronSpec::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_bad_field_is_named_with_its_column() {
        let (field, column, reason) = error("0 25 * * *");
        assert_eq!(field, Some(CronField::Hour));
        assert_eq!(column, 2);
        assert!(!reason.is_empty());
        let (field, column, _) = error("0 0 0 32 * *");
        assert_eq!((field, column), (Some(CronField::DayOfMonth), 6));
        let (field, _, _) = error("0 0 * 13 *");
        assert_eq!(field, Some(CronField::Month));
        let (field, column, _) = error("61 * * * * *");
        assert_eq!((field, column), (Some(CronField::Second), 0));
    }

    #[test]
    fn a_wrong_number_of_fields_says_how_many() {
        let (field, _, reason) = error("* * *");
        assert_eq!(field, None);
        assert!(reason.contains("found 3"), "{reason}");
    }

    #[test]
    fn an_expression_that_never_matches_is_refused() {
        let (_, _, reason) = error("0 0 30 2 *");
        assert!(reason.contains("matches no date"), "{reason}");
    }

    #[test]
    fn it_round_trips_through_json() {
        let spec = CronSpec::parse("0 9 * * MON-FRI").unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, "\"0 9 * * MON-FRI\"");
        let back: CronSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        assert!(serde_json::from_str::<CronSpec>("\"nope\"").is_err());
    }
}
