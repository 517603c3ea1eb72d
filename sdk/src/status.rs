//! Custom status: a small value a workflow publishes about itself (`ctx.set_status`), shown by
//! `describe`, the CLI and the UI. It is not history: the last value set is kept with the
//! run, written with the step that set it. Replay sets it again on the way, so a rebuilt
//! orchestrator holds the value the run last published.

use reprise_history::{DataConverter, Limits, Payload};
use serde::Serialize;

/// The largest custom status, in bytes of JSON (before any codec).
pub const MAX_STATUS_BYTES: usize = 16 * 1024;

/// Why `set_status` refused a value; the status stays as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The value's JSON is larger than [`MAX_STATUS_BYTES`].
    #[error("a custom status is at most {limit} bytes of JSON; this one is larger ({message})")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// The encoder's message.
        message: String,
    },
    /// The value does not encode (serde failed, or a codec did).
    #[error("the custom status does not encode: {0}")]
    Unencodable(#[source] reprise_history::Error),
}

impl From<StatusError> for crate::WorkflowError {
    /// A status that cannot be set fails the workflow (`?` in workflow code), naming why.
    fn from(error: StatusError) -> Self {
        crate::WorkflowError::from_error(&error)
    }
}

/// Encodes a status: JSON held to [`MAX_STATUS_BYTES`], then the converter's codecs.
pub(crate) fn encode_status<T: Serialize + ?Sized>(
    converter: &DataConverter,
    value: &T,
) -> Result<Payload, StatusError> {
    let limits = Limits::DEFAULT.with_max_payload_bytes(MAX_STATUS_BYTES);
    let plain = Payload::encode(value, &limits).map_err(|e| match e {
        reprise_history::Error::TooLarge { .. } => StatusError::TooLarge {
            limit: MAX_STATUS_BYTES,
            message: e.to_string(),
        },
        other => StatusError::Unencodable(other),
    })?;
    converter.encoded(plain).map_err(StatusError::Unencodable)
}
