//! `Payload`: user data (inputs, results, signal bodies, failure details) as tagged bytes.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec;
use crate::error::{Error, Result};
use crate::limits::Limits;

/// Encoded user data. The first byte names the format; the rest is the value in that format.
///
/// Payloads are opaque to the engine: only workflow and activity code decode them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// Encodes a serde value, refusing results over `limits.max_payload_bytes`.
    pub fn encode<T: Serialize + ?Sized>(value: &T, limits: &Limits) -> Result<Payload> {
        let bytes = codec::encode("payload", value)?;
        if bytes.len() > limits.max_payload_bytes {
            return Err(Error::TooLarge {
                what: "payload",
                size: bytes.len() as u64,
                limit: limits.max_payload_bytes as u64,
            });
        }
        Ok(Payload(bytes))
    }

    /// The payload of `()`, for workflows and activities that take or return nothing.
    pub fn unit() -> Payload {
        Payload(vec![codec::FORMAT_BINCODE_V1])
    }

    /// Decodes the value. Fails with a typed error if the bytes are not a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        codec::decode("payload", &self.0, usize::MAX)
    }

    /// Wraps bytes previously taken from [`Payload::as_bytes`], checking the format byte.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Payload> {
        match bytes.first() {
            None => Err(Error::Empty { what: "payload" }),
            Some(&codec::FORMAT_BINCODE_V1) => Ok(Payload(bytes)),
            Some(&format) => Err(Error::UnknownFormat {
                what: "payload",
                format,
            }),
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
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
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
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Order {
        id: u64,
        items: Vec<String>,
    }

    #[test]
    fn round_trips_user_types() {
        let order = Order {
            id: 7,
            items: vec!["tea".into(), "cake".into()],
        };
        let payload = Payload::encode(&order, &Limits::DEFAULT).unwrap();
        assert_eq!(payload.decode::<Order>().unwrap(), order);
        assert_eq!(Payload::unit().decode::<()>().unwrap(), ());
    }

    #[test]
    fn oversized_payload_is_refused() {
        let limits = Limits::DEFAULT.with_max_payload_bytes(16);
        let err = Payload::encode(&"x".repeat(100), &limits).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    what: "payload",
                    limit: 16,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_a_typed_error() {
        let payload = Payload::encode(&"not an order", &Limits::DEFAULT).unwrap();
        let err = payload.decode::<Order>().unwrap_err();
        assert!(
            err.to_string().starts_with("payload does not decode"),
            "{err}"
        );
    }

    #[test]
    fn renders_as_base64_in_json() {
        let payload = Payload::encode(&1u8, &Limits::DEFAULT).unwrap();
        let json = serde_json::to_string(&payload).unwrap();
        assert_eq!(json, "\"AQE=\"");
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), payload);
        assert!(serde_json::from_str::<Payload>("\"\"").is_err());
    }
}
