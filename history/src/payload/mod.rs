//! `Payload`: user data (inputs, results, signal bodies, failure and heartbeat details, side
//! effects) as tagged bytes.
//!
//! The first byte names the format, so old bytes decode forever:
//! - `0x01`: bincode (payloads written before JSON became the default; read, never written);
//! - `0x02`: JSON, the default: readable by people and tools, and tolerant of the type changes
//!   serde tolerates (see `docs/versioning.md`);
//! - `0x03`: an envelope written by a [`PayloadCodec`] (compression, encryption): the codec's
//!   name and a short public note (such as a key id), then the codec's output over the inner
//!   payload, which starts with its own format byte. Codecs nest by wrapping envelopes.
//!
//! [`DataConverter`] turns typed values into payloads and back through the codec chain.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec;
use crate::error::{Error, Result};
use crate::limits::Limits;

mod converter;
mod envelope;

pub use converter::{CodecError, DataConverter, Encoded, PayloadCodec};
pub use envelope::PayloadFormat;

/// Format byte of JSON payloads (serde_json, UTF-8).
pub(crate) const FORMAT_JSON: u8 = 0x02;
/// Format byte of a codec envelope.
pub(crate) const FORMAT_CODEC: u8 = 0x03;

/// Encoded user data. The first byte names the format; the rest is the value in that format.
///
/// The engine never decodes a payload: workflow and activity code do, through the
/// [`DataConverter`] configured on the registry and the client; readers (the CLI, the UI)
/// show JSON payloads as they are.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// Encodes a serde value as JSON, refusing it as soon as it grows past
    /// `limits.max_payload_bytes`: an oversized value is never built whole. No codec is
    /// applied (see [`DataConverter::to_payload`] for that).
    pub fn encode<T: Serialize + ?Sized>(value: &T, limits: &Limits) -> Result<Payload> {
        let limit = limits.max_payload_bytes;
        let mut out = LimitedWriter {
            bytes: Vec::with_capacity(64),
            limit,
            overflowed: false,
        };
        out.bytes.push(FORMAT_JSON);
        match serde_json::to_writer(&mut out, value) {
            Ok(()) => Ok(Payload(out.bytes)),
            Err(_) if out.overflowed => Err(Error::TooLarge {
                what: "payload",
                size: out.bytes.len() as u64,
                limit: limit as u64,
            }),
            Err(e) => Err(Error::Encode {
                what: "payload",
                source: Box::new(e),
            }),
        }
    }

    /// A JSON payload from JSON text (for tools such as the CLI), checked to be one JSON value
    /// and kept within the payload limit.
    pub fn from_json_str(text: &str, limits: &Limits) -> Result<Payload> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Decode {
            what: "JSON text",
            source: Box::new(e),
        })?;
        Payload::encode(&value, limits)
    }

    /// Writes the old bincode format (`0x01`). Only for tests that rebuild the values of
    /// fixtures recorded before JSON became the default; Reprise itself never writes it.
    #[doc(hidden)]
    pub fn encode_bincode_v1<T: Serialize + ?Sized>(value: &T) -> Result<Payload> {
        codec::encode("payload", value).map(Payload)
    }

    /// The payload of `()`, for workflows and activities that take or return nothing.
    pub fn unit() -> Payload {
        Payload(vec![FORMAT_JSON, b'n', b'u', b'l', b'l'])
    }

    /// Decodes the value from a JSON or (old) bincode payload. A payload that a codec wrote
    /// must go through [`DataConverter::from_payload`]; here it is a typed error naming the
    /// codec.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        match self.0.split_first() {
            None => Err(Error::Empty { what: "payload" }),
            Some((&codec::FORMAT_BINCODE_V1, _)) => codec::decode("payload", &self.0, usize::MAX),
            Some((&FORMAT_JSON, body)) => serde_json::from_slice(body).map_err(|e| Error::Decode {
                what: "payload",
                source: Box::new(e),
            }),
            Some((&FORMAT_CODEC, _)) => {
                let envelope = envelope::Envelope::parse(&self.0)?;
                Err(Error::CodecNotConfigured {
                    codec: envelope.codec.to_string(),
                    note: envelope.note.to_string(),
                })
            }
            Some((&format, _)) => Err(Error::UnknownFormat {
                what: "payload",
                format,
            }),
        }
    }

    /// Wraps bytes previously taken from [`Payload::as_bytes`], checking the format byte (and,
    /// for a codec envelope, its header).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Payload> {
        match bytes.first() {
            None => Err(Error::Empty { what: "payload" }),
            Some(&codec::FORMAT_BINCODE_V1 | &FORMAT_JSON) => Ok(Payload(bytes)),
            Some(&FORMAT_CODEC) => {
                envelope::Envelope::parse(&bytes)?;
                Ok(Payload(bytes))
            }
            Some(&format) => Err(Error::UnknownFormat {
                what: "payload",
                format,
            }),
        }
    }

    /// How the payload is encoded: JSON, old bincode, or which codec wrote it.
    pub fn format(&self) -> PayloadFormat<'_> {
        PayloadFormat::of(&self.0)
    }

    /// The JSON text of a JSON payload (`None` for bincode or codec payloads: undo the codecs
    /// first with [`DataConverter::decoded`]).
    pub fn json_text(&self) -> Option<&str> {
        match self.0.split_first() {
            Some((&FORMAT_JSON, body)) => std::str::from_utf8(body).ok(),
            _ => None,
        }
    }

    /// The encoded bytes, format byte first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length of the encoded bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the payload is empty (never true for a payload built by this type).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Wraps bytes a codec envelope or the legacy encoder built (already checked).
    pub(crate) fn from_trusted(bytes: Vec<u8>) -> Payload {
        Payload(bytes)
    }

    /// Takes the bytes out.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// A writer that refuses to grow past a limit, so an oversized value stops encoding early.
struct LimitedWriter {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl std::io::Write for LimitedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other("payload over the size limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Shows the format and size, never the content: payloads end up in logs through `{:?}`, and
/// what they hold is the user's (read it with `DataConverter::to_json`).
impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({}, {} bytes)", self.format(), self.0.len())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        codec::serialize_bytes(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let bytes = codec::deserialize_bytes(deserializer)?;
        Payload::from_bytes(bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
