//! Binary encoding of Reprise's own structures (events, history files): serde + bincode 2 behind
//! a format byte. User payloads are JSON (see `payload`); old bincode payloads decode here.
//!
//! Every blob Reprise stores starts with a format byte, so the encoding can change later
//! without breaking old bytes: a new format gets a new byte, and old bytes keep decoding.
//! Decoding never panics and never allocates without bound, whatever the input: the
//! bincode limit is chosen from the input's length, so a lying length prefix can make the
//! decoder allocate at most a small multiple of the bytes it was actually given.

use bincode::config;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Format byte of bincode 2 (standard config: little endian, varint integers) over serde.
pub(crate) const FORMAT_BINCODE_V1: u8 = 0x01;

fn base_config() -> config::Configuration {
    config::standard()
}

/// Encodes `value` as `[FORMAT_BINCODE_V1] ++ bincode(value)`.
pub(crate) fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    let mut out = vec![FORMAT_BINCODE_V1];
    let body = bincode::serde::encode_to_vec(value, base_config()).map_err(|e| Error::Encode {
        what,
        source: Box::new(e),
    })?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a blob written by [`encode`], refusing blobs over `max_len` bytes and trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max_len: usize,
) -> Result<T> {
    if bytes.len() > max_len {
        return Err(Error::TooLarge {
            what,
            size: bytes.len() as u64,
            limit: max_len as u64,
        });
    }
    let (&format, body) = bytes.split_first().ok_or(Error::Empty { what })?;
    if format != FORMAT_BINCODE_V1 {
        return Err(Error::UnknownFormat { what, format });
    }
    let (value, used) = decode_bounded::<T>(body).map_err(|e| Error::Decode {
        what,
        source: Box::new(e),
    })?;
    if used != body.len() {
        return Err(Error::TrailingBytes {
            what,
            extra: (body.len() - used) as u64,
        });
    }
    Ok(value)
}

/// Decodes with a bincode limit of at most 16 times the input length (and at most 256 MiB).
fn decode_bounded<T: DeserializeOwned>(
    body: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! with_limit {
        ($limit:literal) => {
            bincode::serde::decode_from_slice(body, base_config().with_limit::<$limit>())
        };
    }
    match body.len() {
        0..=4_096 => with_limit!(65_536),
        4_097..=65_536 => with_limit!(1_048_576),
        65_537..=1_048_576 => with_limit!(16_777_216),
        _ => with_limit!(268_435_456),
    }
}

/// Reprise's own values kept beside history (activity options and last failures in task rows):
/// the compact binary encoding, held to the payload limit. They are not user payloads, so
/// they stay binary and no codec applies.
pub trait StoredValue: Serialize + DeserializeOwned {
    /// What the value is, for errors.
    const WHAT: &'static str;

    /// The stored bytes: `0x01` + bincode.
    fn encode_stored(&self) -> Result<Vec<u8>> {
        encode(Self::WHAT, self)
    }

    /// Reads `0x01` + bincode.
    fn decode_binary(bytes: &[u8]) -> Result<Self> {
        decode(Self::WHAT, bytes, bytes.len())
    }

    /// [`StoredValue::encode_stored`], refused over `limits.max_payload_bytes`.
    fn to_stored(&self, limits: &crate::Limits) -> Result<Vec<u8>> {
        let bytes = self.encode_stored()?;
        if bytes.len() > limits.max_payload_bytes {
            return Err(Error::TooLarge {
                what: Self::WHAT,
                size: bytes.len() as u64,
                limit: limits.max_payload_bytes as u64,
            });
        }
        Ok(bytes)
    }

    /// Reads what [`StoredValue::to_stored`] wrote, and JSON (`0x02`), which one development
    /// build wrote for a while.
    fn from_stored(bytes: &[u8]) -> Result<Self> {
        match bytes.first() {
            Some(&crate::payload::FORMAT_JSON) => {
                serde_json::from_slice(&bytes[1..]).map_err(|e| Error::Decode {
                    what: Self::WHAT,
                    source: Box::new(e),
                })
            }
            _ => Self::decode_binary(bytes),
        }
    }
}

impl StoredValue for crate::ActivityOptions {
    const WHAT: &'static str = "activity options";

    /// Options the first stored shape holds are written in it (`0x01` + bincode, the bytes
    /// every build wrote); others as JSON (`0x02`), which older builds read too.
    fn encode_stored(&self) -> Result<Vec<u8>> {
        if self.fits_first_shape() {
            let first = crate::stored_options::ActivityOptionsV1::from(self);
            return encode(Self::WHAT, &first);
        }
        let mut bytes = vec![crate::payload::FORMAT_JSON];
        serde_json::to_writer(&mut bytes, self).map_err(|e| Error::Encode {
            what: Self::WHAT,
            source: Box::new(e),
        })?;
        Ok(bytes)
    }

    /// Binary options are always in the first shape.
    fn decode_binary(bytes: &[u8]) -> Result<Self> {
        decode::<crate::stored_options::ActivityOptionsV1>(Self::WHAT, bytes, bytes.len())
            .map(Self::from)
    }
}

impl StoredValue for crate::Failure {
    const WHAT: &'static str = "failure";
}

/// Serializes bytes as base64 text in human-readable formats and as raw bytes otherwise.
pub(crate) fn serialize_bytes<S: Serializer>(
    bytes: &[u8],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    use base64::Engine as _;
    if serializer.is_human_readable() {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        serializer.serialize_bytes(bytes)
    }
}

/// The inverse of [`serialize_bytes`].
pub(crate) fn deserialize_bytes<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<u8>, D::Error> {
    use base64::Engine as _;
    if deserializer.is_human_readable() {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    } else {
        deserializer.deserialize_byte_buf(ByteBufVisitor)
    }
}

struct ByteBufVisitor;

impl serde::de::Visitor<'_> for ByteBufVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> std::result::Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// Raw bytes inside an encoded structure, encoded compactly (not as a sequence of numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ByteBuf(pub(crate) Vec<u8>);

impl Serialize for ByteBuf {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_bytes(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserialize_bytes(deserializer).map(ByteBuf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_format_byte() {
        let bytes = encode("test value", &("hello", 42u32)).unwrap();
        assert_eq!(bytes[0], FORMAT_BINCODE_V1);
        let back: (String, u32) = decode("test value", &bytes, 1024).unwrap();
        assert_eq!(back, ("hello".to_string(), 42));
    }

    #[test]
    fn typed_errors_for_bad_blobs() {
        let err = decode::<u32>("x", &[], 10).unwrap_err();
        assert!(matches!(err, Error::Empty { what: "x" }), "{err}");
        let err = decode::<u32>("x", &[0x7f, 1], 10).unwrap_err();
        assert!(
            matches!(err, Error::UnknownFormat { format: 0x7f, .. }),
            "{err}"
        );
        let err = decode::<u32>("x", &[1; 11], 10).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    size: 11,
                    limit: 10,
                    ..
                }
            ),
            "{err}"
        );
        let err = decode::<u8>("x", &[1, 5, 6], 10).unwrap_err();
        assert!(
            matches!(err, Error::TrailingBytes { extra: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn stored_values_are_compact_and_read_json_rows_too() {
        use crate::{ActivityOptions, Limits};
        let options = ActivityOptions::default();
        let bytes = options.to_stored(&Limits::DEFAULT).unwrap();
        assert_eq!(bytes[0], FORMAT_BINCODE_V1);
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        assert_eq!(ActivityOptions::from_stored(&bytes).unwrap(), options);
        let json = crate::Payload::encode(&options, &Limits::DEFAULT).unwrap();
        assert_eq!(
            ActivityOptions::from_stored(json.as_bytes()).unwrap(),
            options
        );
        let err = ActivityOptions::from_stored(&[0x02, b'{']).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("activity options does not decode"),
            "{err}"
        );
    }

    #[test]
    fn options_the_first_shape_cannot_hold_are_stored_as_json_and_read_back() {
        use crate::{ActivityOptions, Limits, RetryPolicy};
        // A row written before the new fields: the same bytes as today's for such options.
        let old = ActivityOptions::default()
            .to_stored(&Limits::DEFAULT)
            .unwrap();
        let v1 = encode(
            "activity options",
            &crate::stored_options::ActivityOptionsV1::from(&ActivityOptions::default()),
        )
        .unwrap();
        assert_eq!(old, v1);
        let options = ActivityOptions {
            retry: RetryPolicy {
                retry_on: vec!["Busy".into()],
                ..RetryPolicy::default()
            },
            schedule_to_start: Some(std::time::Duration::from_secs(30)),
            ..ActivityOptions::default()
        };
        let bytes = options.to_stored(&Limits::DEFAULT).unwrap();
        assert_eq!(bytes[0], crate::payload::FORMAT_JSON);
        assert_eq!(ActivityOptions::from_stored(&bytes).unwrap(), options);
    }

    #[test]
    fn a_lying_length_prefix_does_not_allocate_its_claim() {
        // Varint 0xFD announces a u64 length: here 2^40 bytes, with none following.
        let mut blob = vec![FORMAT_BINCODE_V1, 0xFD];
        blob.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let err = decode::<String>("x", &blob, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
    }
}
