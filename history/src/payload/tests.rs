use super::*;
use crate::{CodecError, DataConverter, Encoded, PayloadCodec};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<String>,
}

fn order() -> Order {
    Order {
        id: 7,
        items: vec!["tea".into(), "cake".into()],
    }
}

#[test]
fn round_trips_user_types_as_json() {
    let payload = Payload::encode(&order(), &Limits::DEFAULT).unwrap();
    assert_eq!(
        payload.json_text(),
        Some(r#"{"id":7,"items":["tea","cake"]}"#)
    );
    assert_eq!(payload.format(), PayloadFormat::Json);
    assert_eq!(payload.decode::<Order>().unwrap(), order());
    Payload::unit().decode::<()>().unwrap();
}

#[test]
fn old_bincode_payloads_still_decode() {
    let bytes = codec::encode("payload", &order()).unwrap();
    let payload = Payload::from_bytes(bytes).unwrap();
    assert_eq!(payload.format(), PayloadFormat::Bincode);
    assert_eq!(payload.decode::<Order>().unwrap(), order());
    assert_eq!(payload.json_text(), None);
}

#[test]
fn oversized_payload_is_refused_while_encoding() {
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
    // Encoding stopped at the limit instead of building the whole value first.
    let Error::TooLarge { size, .. } = err else {
        unreachable!()
    };
    assert!(size <= 16, "stopped at {size} bytes");
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
fn json_text_from_tools_is_checked() {
    let payload =
        Payload::from_json_str(r#" {"id": 7, "items": ["tea","cake"]} "#, &Limits::DEFAULT)
            .unwrap();
    assert_eq!(payload.decode::<Order>().unwrap(), order());
    let err = Payload::from_json_str("{id: 7}", &Limits::DEFAULT).unwrap_err();
    assert!(
        err.to_string().contains("JSON text does not decode"),
        "{err}"
    );
}

#[test]
fn renders_as_base64_in_json() {
    let payload = Payload::encode(&1u8, &Limits::DEFAULT).unwrap();
    let json = serde_json::to_string(&payload).unwrap();
    assert_eq!(json, "\"AjE=\"");
    assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), payload);
    assert!(serde_json::from_str::<Payload>("\"\"").is_err());
}

/// Reverses the bytes; a stand-in codec whose output is easy to check.
struct Reverse;

impl PayloadCodec for Reverse {
    fn name(&self) -> &str {
        "test-reverse"
    }

    fn encode(&self, payload: &[u8]) -> std::result::Result<Option<Encoded>, CodecError> {
        Ok(Some(Encoded {
            note: "v1".into(),
            body: payload.iter().rev().copied().collect(),
        }))
    }

    fn decode(
        &self,
        note: &str,
        body: &[u8],
        _max_len: usize,
    ) -> std::result::Result<Vec<u8>, CodecError> {
        if note != "v1" {
            return Err(CodecError::UnknownKey {
                key_id: note.into(),
                configured: "v1".into(),
            });
        }
        Ok(body.iter().rev().copied().collect())
    }
}

#[test]
fn codecs_are_recorded_and_undone_by_name() {
    let converter = DataConverter::default().with_codec(Reverse).unwrap();
    let payload = converter.to_payload(&order()).unwrap();
    assert_eq!(
        payload.format(),
        PayloadFormat::Codec {
            codec: "test-reverse",
            note: "v1"
        }
    );
    assert_eq!(converter.from_payload::<Order>(&payload).unwrap(), order());
    assert_eq!(
        converter.to_json(&payload).unwrap().unwrap()["id"],
        serde_json::json!(7)
    );
    // Stored bytes survive the trip through `from_bytes`.
    let back = Payload::from_bytes(payload.as_bytes().to_vec()).unwrap();
    assert_eq!(back, payload);

    // Without the codec: a typed error naming it and its note.
    let err = DataConverter::default()
        .from_payload::<Order>(&payload)
        .unwrap_err();
    assert!(
        matches!(&err, Error::CodecNotConfigured { codec, note } if codec == "test-reverse" && note == "v1"),
        "{err}"
    );
    let err = payload.decode::<Order>().unwrap_err();
    assert!(matches!(err, Error::CodecNotConfigured { .. }), "{err}");
    // Plain payloads read through a converter with codecs.
    let plain = Payload::encode(&order(), &Limits::DEFAULT).unwrap();
    assert_eq!(converter.from_payload::<Order>(&plain).unwrap(), order());
}

#[test]
fn a_codec_name_is_unique_in_a_chain() {
    let err = DataConverter::default()
        .with_codec(Reverse)
        .unwrap()
        .with_codec(Reverse)
        .unwrap_err();
    assert!(err.to_string().contains("already in the chain"), "{err}");
}

#[test]
fn broken_envelopes_are_refused() {
    for bytes in [
        vec![FORMAT_CODEC],
        vec![FORMAT_CODEC, 5, b'a'],
        vec![FORMAT_CODEC, 0, 0],
        vec![FORMAT_CODEC, 1, b'z', 9, b'x'],
    ] {
        let err = Payload::from_bytes(bytes.clone()).unwrap_err();
        assert!(err.to_string().contains("envelope"), "{bytes:?}: {err}");
    }
}
