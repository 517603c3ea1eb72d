//! What a bad schedule gets.

use crate::cron::CronField;

/// Why a schedule's spec or policies are refused. Nothing is stored for a refused schedule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A cron expression that does not parse, or never matches.
    #[error("invalid cron expression {expression:?}{}: {reason}", at(*field, *column))]
    Cron {
        /// The expression as given.
        expression: String,
        /// The field at fault, when one field is.
        field: Option<CronField>,
        /// Where that field starts (0-based, in characters).
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// A time zone name that is not in the IANA database.
    #[error(
        "unknown time zone {name:?}: expected an IANA name such as \"Europe/Berlin\" or \"UTC\""
    )]
    TimeZone {
        /// The name as given.
        name: String,
    },
    /// An interval of zero, an offset not smaller than its interval, a negative or
    /// out-of-range duration.
    #[error("invalid interval: {0}")]
    Interval(String),
    /// A start after the end, or an excluded range that ends before it starts.
    #[error("invalid time range: {0}")]
    Range(String),
}

fn at(field: Option<CronField>, column: usize) -> String {
    match field {
        Some(field) => format!(" at column {column} ({field} field)"),
        None => String::new(),
    }
}
