//! `DataConverter`: typed values to payloads and back — JSON, size limits, and the codec chain.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Payload;
use super::envelope::Envelope;
use crate::error::{Error, Result};
use crate::limits::Limits;

/// Deepest nesting of codec envelopes a reader undoes (a chain is a handful of codecs).
const MAX_CODEC_DEPTH: usize = 8;

/// A transformation of payload bytes: compression, encryption. Applied on the way out, in the
/// order the codecs were added, and undone on the way in by name, so that every payload can
/// be read by a process configured with the codecs (and keys) that wrote it.
pub trait PayloadCodec: Send + Sync + 'static {
    /// The name recorded in every payload this codec encodes. It is part of the stored format:
    /// never change it, and never give two different codecs the same name.
    fn name(&self) -> &str;

    /// Encodes a payload's bytes (format byte first). `Ok(None)` leaves the payload as it is
    /// (a compressor skipping a small payload).
    fn encode(&self, payload: &[u8]) -> Result<Option<Encoded>, CodecError>;

    /// Undoes [`PayloadCodec::encode`]: `note` and `body` are what it returned. The result may
    /// be at most `max_len` bytes (a decompressor must stop there, not allocate a bomb).
    fn decode(&self, note: &str, body: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError>;
}

/// What a codec made of a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Stored in clear beside the body and shown in errors: a key id, never a secret (at most
    /// 255 bytes).
    pub note: String,
    /// The encoded bytes.
    pub body: Vec<u8>,
}

/// Why a codec refused a payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload names a key this process does not have.
    #[error("no key with id {key_id:?} is configured (configured: {configured})")]
    UnknownKey {
        /// The key id the payload names.
        key_id: String,
        /// The key ids this process has.
        configured: String,
    },
    /// Authenticated decryption failed: the bytes were altered, or another key has this id.
    #[error(
        "authentication failed: the payload was altered, or was encrypted with another key under this id"
    )]
    Tampered,
    /// The decoded payload would be larger than allowed.
    #[error("decoded payload would exceed {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not what the codec writes.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// The codec's own failure.
    #[error("{0}")]
    Failed(String),
}

/// How typed values become stored payloads and back: JSON, the payload size limit, and the
/// chain of codecs. Configure one on the registry (workflows and activities) and the client;
/// cloning is cheap.
#[derive(Clone)]
pub struct DataConverter {
    limits: Limits,
    codecs: Arc<[Arc<dyn PayloadCodec>]>,
}

impl Default for DataConverter {
    fn default() -> Self {
        DataConverter::new(Limits::DEFAULT)
    }
}

impl fmt::Debug for DataConverter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.codecs.iter().map(|c| c.name()).collect();
        f.debug_struct("DataConverter")
            .field("limits", &self.limits)
            .field("codecs", &names)
            .finish()
    }
}

impl DataConverter {
    /// JSON with these limits and no codecs.
    pub fn new(limits: Limits) -> DataConverter {
        DataConverter {
            limits,
            codecs: Arc::new([]),
        }
    }

    /// Adds a codec at the end of the chain (applied after the ones before it). Its name must
    /// differ from theirs: a reader finds a codec by name.
    pub fn with_codec(self, codec: impl PayloadCodec) -> Result<DataConverter> {
        let name = codec.name();
        if name.is_empty() || name.len() > super::envelope::MAX_CODEC_NAME {
            return Err(Error::InvalidName {
                kind: "codec name",
                value: name.chars().take(64).collect(),
                reason: "must be 1 to 64 bytes",
            });
        }
        if self.codecs.iter().any(|c| c.name() == name) {
            return Err(Error::InvalidName {
                kind: "codec name",
                value: name.to_string(),
                reason: "is already in the chain",
            });
        }
        let mut codecs: Vec<Arc<dyn PayloadCodec>> = self.codecs.iter().cloned().collect();
        codecs.push(Arc::new(codec));
        Ok(DataConverter {
            limits: self.limits,
            codecs: codecs.into(),
        })
    }

    /// The same codecs with other limits.
    pub fn with_limits(mut self, limits: Limits) -> DataConverter {
        self.limits = limits;
        self
    }

    /// The size limits payloads are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The codec names, in the order they are applied.
    pub fn codec_names(&self) -> impl Iterator<Item = &str> {
        self.codecs.iter().map(|c| c.name())
    }

    /// Encodes a value: JSON (stopped as soon as it passes the limit), then every codec.
    pub fn to_payload<T: Serialize + ?Sized>(&self, value: &T) -> Result<Payload> {
        let plain = Payload::encode(value, &self.limits)?;
        self.encoded(plain)
    }

    /// Applies the codec chain to a plain payload (JSON text from the CLI, say).
    pub fn encoded(&self, plain: Payload) -> Result<Payload> {
        let mut bytes = plain.into_bytes();
        for codec in self.codecs.iter() {
            let encoded = codec.encode(&bytes).map_err(|source| Error::Codec {
                codec: codec.name().to_string(),
                note: String::new(),
                source,
            })?;
            if let Some(Encoded { note, body }) = encoded {
                bytes = Envelope::write(codec.name(), &note, &body)?;
            }
        }
        let limit = self.limits.max_payload_bytes;
        if bytes.len() > limit {
            return Err(Error::TooLarge {
                what: "payload",
                size: bytes.len() as u64,
                limit: limit as u64,
            });
        }
        Ok(Payload::from_trusted(bytes))
    }

    /// A payload user code built itself (failure details made with [`Payload::encode`]) put
    /// through the codecs, so that an encrypting chain leaves no plaintext behind; one that a
    /// codec already wrote is left as it is.
    pub fn sealed(&self, payload: Payload) -> Result<Payload> {
        if payload.as_bytes().first() == Some(&super::FORMAT_CODEC) || self.codecs.is_empty() {
            return Ok(payload);
        }
        self.encoded(payload)
    }

    /// A failure whose details are [`DataConverter::sealed`]. Details that cannot be sealed
    /// (over the size limit once encoded) are dropped, and a cause says why: they are never
    /// stored in the clear.
    pub fn sealed_failure(&self, mut failure: crate::Failure) -> crate::Failure {
        if let Some(details) = failure.details.take() {
            match self.sealed(details) {
                Ok(details) => failure.details = Some(details),
                Err(e) => failure.causes.push(crate::FailureCause {
                    error_type: "DetailsDropped".to_string(),
                    message: format!("the failure's details were dropped: {e}"),
                }),
            }
        }
        failure
    }

    /// Undoes every codec: the plain (JSON or bincode) payload. A codec that is not configured
    /// here, a missing key or altered bytes are typed errors naming the codec and its note.
    pub fn decoded(&self, payload: &Payload) -> Result<Payload> {
        let mut current: Option<Vec<u8>> = None;
        for _ in 0..=MAX_CODEC_DEPTH {
            let bytes = current.as_deref().unwrap_or(payload.as_bytes());
            if bytes.first() != Some(&super::FORMAT_CODEC) {
                return Ok(match current {
                    Some(bytes) => Payload::from_bytes(bytes)?,
                    None => payload.clone(),
                });
            }
            let envelope = Envelope::parse(bytes)?;
            let codec = self
                .codecs
                .iter()
                .find(|c| c.name() == envelope.codec)
                .ok_or_else(|| Error::CodecNotConfigured {
                    codec: envelope.codec.to_string(),
                    note: envelope.note.to_string(),
                })?;
            let inner = codec
                .decode(envelope.note, envelope.body, self.limits.max_payload_bytes)
                .map_err(|source| Error::Codec {
                    codec: envelope.codec.to_string(),
                    note: envelope.note.to_string(),
                    source,
                })?;
            current = Some(inner);
        }
        Err(Error::Decode {
            what: "payload",
            source: format!("more than {MAX_CODEC_DEPTH} nested codec envelopes").into(),
        })
    }

    /// Decodes a value of type `T`, undoing the codecs first.
    pub fn from_payload<T: DeserializeOwned>(&self, payload: &Payload) -> Result<T> {
        if payload.as_bytes().first() == Some(&super::FORMAT_CODEC) {
            self.decoded(payload)?.decode()
        } else {
            payload.decode()
        }
    }

    /// The payload as a JSON value, for people and tools: codecs undone; `None` for a payload
    /// in the old bincode format, which records no field names and cannot be shown.
    pub fn to_json(&self, payload: &Payload) -> Result<Option<serde_json::Value>> {
        let plain = self.decoded(payload)?;
        match plain.json_text() {
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| Error::Decode {
                    what: "payload",
                    source: Box::new(e),
                }),
            None => Ok(None),
        }
    }
}
