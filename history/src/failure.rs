//! `Failure`: a structured error as it is recorded in history, never a bare string.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::payload::Payload;

/// What kind of thing failed. Recorded, so variants are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// User code returned an error.
    Application,
    /// A timeout ran out.
    TimedOut,
    /// The work was cancelled.
    Cancelled,
    /// The run was terminated by an operator.
    Terminated,
    /// User code panicked; the message is the panic message.
    Panicked,
}

/// One link in a failure's cause chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCause {
    /// The type name of the cause.
    pub error_type: String,
    /// Its message.
    pub message: String,
}

/// A failure as recorded: what kind, which error type, its message, why (the causes, outermost
/// first), whether a retry may help, and optional structured details.
///
/// The cause chain is flat on purpose: decoding never recurses, whatever the bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of thing failed.
    pub kind: FailureKind,
    /// The error's type name, for matching non-retryable types and for operators.
    pub error_type: String,
    /// The error's message.
    pub message: String,
    /// Whether retrying may succeed.
    pub retryable: bool,
    /// The error's sources, outermost first.
    pub causes: Vec<FailureCause>,
    /// Structured details chosen by user code.
    pub details: Option<Payload>,
}

impl Failure {
    /// A retryable application failure.
    pub fn application(error_type: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Application,
            error_type: error_type.into(),
            message: message.into(),
            retryable: true,
            causes: Vec::new(),
            details: None,
        }
    }

    /// A failure of another kind, not retryable.
    pub fn of_kind(kind: FailureKind, message: impl Into<String>) -> Failure {
        let error_type = match kind {
            FailureKind::Application => "Application",
            FailureKind::TimedOut => "TimedOut",
            FailureKind::Cancelled => "Cancelled",
            FailureKind::Terminated => "Terminated",
            FailureKind::Panicked => "Panicked",
        };
        Failure {
            retryable: false,
            ..Failure::application(error_type, message)
        }
        .with_kind(kind)
    }

    fn with_kind(mut self, kind: FailureKind) -> Failure {
        self.kind = kind;
        self
    }

    /// Sets whether a retry may help.
    pub fn retryable(mut self, retryable: bool) -> Failure {
        self.retryable = retryable;
        self
    }

    /// Appends a cause (call from outermost to innermost).
    pub fn caused_by(
        mut self,
        error_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Failure {
        self.causes.push(FailureCause {
            error_type: error_type.into(),
            message: message.into(),
        });
        self
    }

    /// Records the source chain of a Rust error as causes.
    pub fn with_sources(mut self, error: &(dyn std::error::Error + 'static)) -> Failure {
        let mut source = error.source();
        while let Some(cause) = source {
            self.causes.push(FailureCause {
                error_type: "source".to_string(),
                message: cause.to_string(),
            });
            source = cause.source();
        }
        self
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: Payload) -> Failure {
        self.details = Some(details);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)?;
        for cause in &self.causes {
            write!(f, "; caused by {}: {}", cause.error_type, cause.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("card declined")]
    struct Declined(#[source] std::io::Error);

    #[test]
    fn displays_the_cause_chain() {
        let err = Declined(std::io::Error::other("bank offline"));
        let failure = Failure::application("Declined", err.to_string())
            .retryable(false)
            .with_sources(&err);
        assert_eq!(
            failure.to_string(),
            "Declined: card declined; caused by source: bank offline"
        );
        assert!(!failure.retryable);
    }

    #[test]
    fn kinds_name_themselves() {
        let f = Failure::of_kind(FailureKind::TimedOut, "start-to-close after 5s");
        assert_eq!(f.kind, FailureKind::TimedOut);
        assert_eq!(f.to_string(), "TimedOut: start-to-close after 5s");
        assert!(!f.retryable);
    }
}
