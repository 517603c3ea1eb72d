//! The codec envelope (format `0x03`): `0x03 | name length | name | note length | note | body`.
//!
//! The name says which codec wrote the body; the note is what that codec chose to make
//! public (an encryption key id), so that a reader without the codec or key can say plainly
//! what it lacks. Both are short UTF-8 strings; lengths are one byte each.

use std::fmt;

use crate::codec;
use crate::error::{Error, Result};

use super::{FORMAT_CODEC, FORMAT_JSON};

/// Longest codec name, in bytes.
pub(crate) const MAX_CODEC_NAME: usize = 64;
/// Longest note, in bytes.
pub(crate) const MAX_NOTE: usize = 255;

/// A parsed codec envelope, borrowing from the payload's bytes.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub(crate) codec: &'a str,
    pub(crate) note: &'a str,
    pub(crate) body: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses the header; every length is checked against the bytes actually present.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>> {
        let malformed = |reason: &str| Error::Decode {
            what: "payload codec envelope",
            source: reason.into(),
        };
        let rest = match bytes.split_first() {
            Some((&FORMAT_CODEC, rest)) => rest,
            _ => return Err(malformed("does not start with the envelope format byte")),
        };
        let (codec, rest) = take_str(rest).ok_or_else(|| malformed("truncated codec name"))?;
        if codec.is_empty() {
            return Err(malformed("empty codec name"));
        }
        let (note, body) = take_str(rest).ok_or_else(|| malformed("truncated note"))?;
        Ok(Envelope { codec, note, body })
    }

    /// Writes an envelope around a codec's output.
    pub(crate) fn write(codec: &str, note: &str, body: &[u8]) -> Result<Vec<u8>> {
        if codec.is_empty() || codec.len() > MAX_CODEC_NAME {
            return Err(Error::InvalidName {
                kind: "codec name",
                value: codec.chars().take(64).collect(),
                reason: "must be 1 to 64 bytes",
            });
        }
        if note.len() > MAX_NOTE {
            return Err(Error::InvalidName {
                kind: "codec note",
                value: note.chars().take(64).collect(),
                reason: "must be at most 255 bytes",
            });
        }
        let mut out = Vec::with_capacity(3 + codec.len() + note.len() + body.len());
        out.push(FORMAT_CODEC);
        out.push(codec.len() as u8);
        out.extend_from_slice(codec.as_bytes());
        out.push(note.len() as u8);
        out.extend_from_slice(note.as_bytes());
        out.extend_from_slice(body);
        Ok(out)
    }
}

fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    if rest.len() < len {
        return None;
    }
    let (text, rest) = rest.split_at(len);
    Some((std::str::from_utf8(text).ok()?, rest))
}

/// How a payload is encoded, as far as can be told without decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadFormat<'a> {
    /// JSON text.
    Json,
    /// bincode, as written before JSON became the default.
    Bincode,
    /// Written by a codec.
    Codec {
        /// The codec's name.
        codec: &'a str,
        /// What the codec made public (for encryption: the key id).
        note: &'a str,
    },
    /// Not a payload this version knows (empty, unknown format byte, broken envelope).
    Unknown,
}

impl<'a> PayloadFormat<'a> {
    pub(crate) fn of(bytes: &'a [u8]) -> PayloadFormat<'a> {
        match bytes.first() {
            Some(&FORMAT_JSON) => PayloadFormat::Json,
            Some(&codec::FORMAT_BINCODE_V1) => PayloadFormat::Bincode,
            Some(&FORMAT_CODEC) => match Envelope::parse(bytes) {
                Ok(e) => PayloadFormat::Codec {
                    codec: e.codec,
                    note: e.note,
                },
                Err(_) => PayloadFormat::Unknown,
            },
            _ => PayloadFormat::Unknown,
        }
    }
}

impl fmt::Display for PayloadFormat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadFormat::Json => f.write_str("JSON"),
            PayloadFormat::Bincode => f.write_str("bincode"),
            PayloadFormat::Codec { codec, note: "" } => write!(f, "codec {codec}"),
            PayloadFormat::Codec { codec, note } => write!(f, "codec {codec} ({note})"),
            PayloadFormat::Unknown => f.write_str("unknown format"),
        }
    }
}
