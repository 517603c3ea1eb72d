//! The runs filter as text (`?status=running&type=checkout&id=order-&queue=…&from=…&to=…&parked=on`)
//! and back: the runs page, bulk actions, the API and the CLI's `batch` share it.

use maud::{Markup, html};
use reprise_engine::{RunCursor, RunFilter};
use reprise_history::{RunState, TaskQueue, Timestamp, WorkflowType};
use serde::Deserialize;

/// The filter's fields as a form sends them (every one optional, empty meaning "any").
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FilterQuery {
    /// A status name (`running`, `failed`, …); empty: any.
    #[serde(default)]
    pub status: String,
    /// A workflow type; empty: any.
    #[serde(default, rename = "type")]
    pub workflow_type: String,
    /// The start of workflow ids; empty: any.
    #[serde(default)]
    pub id: String,
    /// An orchestrator task queue; empty: any.
    #[serde(default)]
    pub queue: String,
    /// Created at or after (RFC 3339, or `YYYY-MM-DDTHH:MM` in UTC); empty: any time.
    #[serde(default)]
    pub from: String,
    /// Created before (as `from`); empty: any time.
    #[serde(default)]
    pub to: String,
    /// `on`: parked runs only.
    #[serde(default)]
    pub parked: String,
    /// A page's cursor (`RunCursor::token`); empty: the first page.
    #[serde(default)]
    pub after: String,
}

fn nonempty(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// A time as a form sends it: RFC 3339, or a `datetime-local` field's `YYYY-MM-DDTHH:MM[:SS]`
/// read as UTC.
fn parse_time(field: &str, text: &str) -> Result<Timestamp, String> {
    let with_zone = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        _ => text.to_string(),
    };
    Timestamp::parse_rfc3339(&with_zone).ok_or_else(|| {
        format!("{field}: {text:?} is not a time (2026-12-01T09:30 or RFC 3339, in UTC)")
    })
}

impl FilterQuery {
    /// The filter it asks for, or why it is not one.
    pub fn filter(&self) -> Result<RunFilter, String> {
        Ok(RunFilter {
            status: nonempty(&self.status)
                .map(|s| RunState::parse(s).map_err(|e| format!("status: {e}")))
                .transpose()?,
            parked: matches!(self.parked.as_str(), "on" | "true" | "1"),
            workflow_type: nonempty(&self.workflow_type)
                .map(|t| WorkflowType::new(t).map_err(|e| format!("workflow type: {e}")))
                .transpose()?,
            workflow_id_prefix: nonempty(&self.id).map(str::to_string),
            task_queue: nonempty(&self.queue)
                .map(|q| TaskQueue::new(q).map_err(|e| format!("task queue: {e}")))
                .transpose()?,
            created_from: nonempty(&self.from)
                .map(|t| parse_time("from", t))
                .transpose()?,
            created_before: nonempty(&self.to)
                .map(|t| parse_time("to", t))
                .transpose()?,
        })
    }

    /// The page cursor, if one was given.
    pub(crate) fn cursor(&self) -> Result<Option<RunCursor>, String> {
        nonempty(&self.after)
            .map(|a| RunCursor::parse(a).map_err(|e| e.to_string()))
            .transpose()
    }

    /// The query string of the filter (without the cursor), for links.
    pub(crate) fn query_string(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.pairs() {
            if !value.is_empty() {
                out.append_pair(name, value);
            }
        }
        out.finish()
    }

    fn pairs(&self) -> [(&'static str, &str); 7] {
        [
            ("status", &self.status),
            ("type", &self.workflow_type),
            ("id", &self.id),
            ("queue", &self.queue),
            ("from", &self.from),
            ("to", &self.to),
            ("parked", &self.parked),
        ]
    }

    /// The filter as hidden fields, for a form that acts on it (bulk actions).
    pub(crate) fn hidden_fields(&self) -> Markup {
        html! {
            @for (name, value) in self.pairs() {
                @if !value.is_empty() { input type="hidden" name=(name) value=(value); }
            }
        }
    }

    /// Whether any condition is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.pairs().iter().all(|(_, v)| v.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_a_filter() {
        let query = FilterQuery {
            status: "running".into(),
            workflow_type: "checkout".into(),
            id: "order-".into(),
            queue: "payments".into(),
            from: "2026-12-01T09:30".into(),
            to: "2026-12-02T00:00:00Z".into(),
            parked: "on".into(),
            after: String::new(),
        };
        let filter = query.filter().unwrap();
        assert_eq!(filter.status, Some(RunState::Running));
        assert!(filter.parked);
        assert_eq!(filter.workflow_id_prefix.as_deref(), Some("order-"));
        assert_eq!(
            filter.created_from,
            Timestamp::parse_rfc3339("2026-12-01T09:30:00Z")
        );
        assert_eq!(
            query.query_string(),
            "status=running&type=checkout&id=order-&queue=payments&from=2026-12-01T09%3A30&to=2026-12-02T00%3A00%3A00Z&parked=on"
        );
    }

    #[test]
    fn a_wrong_field_says_which_and_why() {
        let bad_status = FilterQuery {
            status: "sleeping".into(),
            ..FilterQuery::default()
        };
        assert!(bad_status.filter().unwrap_err().starts_with("status:"));
        let bad_time = FilterQuery {
            from: "yesterday".into(),
            ..FilterQuery::default()
        };
        assert!(bad_time.filter().unwrap_err().starts_with("from:"));
        let bad_cursor = FilterQuery {
            after: "nope".into(),
            ..FilterQuery::default()
        };
        assert!(bad_cursor.cursor().is_err());
        assert!(FilterQuery::default().filter().unwrap() == RunFilter::default());
    }
}
