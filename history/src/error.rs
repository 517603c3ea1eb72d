//! The one error type of the history crate.

use crate::ids::Seq;
use crate::validate::Violation;

/// Everything that can go wrong when encoding, decoding, verifying or validating history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A blob was empty where at least a format byte was expected.
    #[error("{what} is empty: expected at least a format byte")]
    Empty {
        /// What was being decoded.
        what: &'static str,
    },
    /// A blob starts with a format byte this version of Reprise does not know.
    #[error(
        "{what} has unknown format byte {format:#04x}; it was written by a newer Reprise or is corrupt"
    )]
    UnknownFormat {
        /// What was being decoded.
        what: &'static str,
        /// The byte found.
        format: u8,
    },
    /// A value is larger than the configured limit.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size in bytes (or in events, for event counts).
        size: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// Bytes did not decode into the expected type.
    #[error("{what} does not decode: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value decoded but bytes were left over after it.
    #[error("{what} has {extra} trailing bytes after the value")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left.
        extra: u64,
    },
    /// A value could not be encoded (for example, a serde impl refused it).
    #[error("{what} does not encode: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A payload was written by a codec that is not configured where it is being read.
    #[error(
        "payload was encoded by codec {codec:?}{} and no codec of that name is configured here; configure it (with its keys) on the registry or client that reads it",
        note_suffix(note)
    )]
    CodecNotConfigured {
        /// The codec named in the payload.
        codec: String,
        /// What the codec recorded in clear (for encryption: the key id).
        note: String,
    },
    /// A configured codec refused a payload: a missing key, altered bytes, a malformed body.
    #[error("payload codec {codec:?}{} refused it: {source}", note_suffix(note))]
    Codec {
        /// The codec.
        codec: String,
        /// What the codec recorded in clear (for encryption: the key id).
        note: String,
        /// Why.
        #[source]
        source: crate::payload::CodecError,
    },
    /// A name or id broke its rules (empty, too long, control characters).
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName {
        /// Which kind of name (`workflow id`, `activity type`, ...).
        kind: &'static str,
        /// The offending value, shortened when long.
        value: String,
        /// What rule it broke.
        reason: &'static str,
    },
    /// A stored or given name (a run status, a parent-close policy) that no value has.
    #[error("unknown {what} {value:?}; expected one of: {expected}")]
    UnknownValue {
        /// What kind of name it was meant to be.
        what: &'static str,
        /// The name given, shortened when long.
        value: String,
        /// The valid names, comma-separated.
        expected: String,
    },
    /// The hash chain does not hold from this event on.
    #[error(
        "hash chain broken at seq {seq}: the stored hash is neither blake3(previous hash || event bytes) nor, keyed, its MAC under the chain key given (a keyed history is verified with its key: REPRISE_CHAIN_KEY)"
    )]
    ChainMismatch {
        /// The first event whose hash does not verify.
        seq: Seq,
    },
    /// A link after keyed ones is a plain blake3 hash: written by something that does not hold
    /// the chain key (a forger with database access, or a process not given the key).
    #[error(
        "hash chain broken at seq {seq}: the history is keyed up to it, and this event's hash is not (written without the chain key)"
    )]
    ChainNotKeyed {
        /// The first event whose hash is not keyed.
        seq: Seq,
    },
    /// Events are not numbered 1, 2, 3, ... without gaps.
    #[error("event seq {found} where seq {expected} was expected")]
    SeqOutOfOrder {
        /// The seq that should have come next.
        expected: Seq,
        /// The seq found.
        found: Seq,
    },
    /// The head hash recorded for a history does not match its events.
    #[error("head hash mismatch: recorded {recorded}, computed {computed}")]
    HeadMismatch {
        /// The hash stored with the history.
        recorded: String,
        /// The hash computed from the events.
        computed: String,
    },
    /// A recorded-history file is malformed.
    #[error("recorded history file is malformed: {reason}")]
    MalformedFile {
        /// What is wrong with it.
        reason: String,
    },
    /// A priority outside 1 to 9.
    #[error("a priority is from 1 (lowest) to 9 (highest), not {0}")]
    InvalidPriority(i64),
    /// The history is structurally invalid; every violation is listed.
    #[error("history is invalid: {}", Violation::summary(.0))]
    Invalid(Vec<Violation>),
}

fn note_suffix(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(" ({note})")
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
