//! Property tests of the stored format: every event and history round-trips through every
//! encoding, any single-byte change to an encoded history is caught, and no input panics.
//!
//! Case counts are set per test below (proptest's `PROPTEST_CASES` overrides them).

use proptest::prelude::*;

use crate::strategies;
use crate::{Error, Event, Limits, Payload, RecordedHistory};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(1_000))]

    /// 1,000 cases: every kind of event, with arbitrary contents, encodes and decodes to itself.
    #[test]
    fn every_event_round_trips(event in strategies::event()) {
        let bytes = event.encode(&Limits::DEFAULT).unwrap();
        prop_assert_eq!(Event::decode(&bytes, &Limits::DEFAULT).unwrap(), event.clone());
        let json = serde_json::to_string(&event).unwrap();
        prop_assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }

    /// 1,000 cases: arbitrary bytes never panic the event or payload decoders.
    #[test]
    fn arbitrary_bytes_never_panic_event_decoding(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Event::decode(&bytes, &Limits::DEFAULT);
        if let Ok(payload) = Payload::from_bytes(bytes) {
            let _ = payload.decode::<(String, Vec<u64>, Option<bool>)>();
        }
    }

    /// 1,000 cases: bytes that start like a valid event but are then arbitrary never panic.
    #[test]
    fn corrupted_event_bytes_never_panic(
        event in strategies::event(),
        cut in any::<prop::sample::Index>(),
        noise in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = event.encode(&Limits::DEFAULT).unwrap();
        bytes.truncate(cut.index(bytes.len() + 1));
        bytes.extend(noise);
        let _ = Event::decode(&bytes, &Limits::DEFAULT);
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// 300 cases: valid histories round-trip through the binary file and the JSON rendering.
    #[test]
    fn histories_round_trip_through_both_renderings(history in strategies::history(40)) {
        let bytes = history.to_bytes().unwrap();
        let from_bytes = RecordedHistory::from_bytes(&bytes, &Limits::DEFAULT).unwrap();
        prop_assert_eq!(&from_bytes, &history);
        let json = history.to_json().unwrap();
        let from_json = RecordedHistory::from_json(&json, &Limits::DEFAULT).unwrap();
        prop_assert_eq!(&from_json, &history);
        // The two renderings carry the same bytes: re-exporting is byte-identical.
        prop_assert_eq!(from_json.to_bytes().unwrap(), bytes);
    }

    /// 300 histories, each with a single byte changed at a random position to a random other
    /// value: reading the file always fails.
    #[test]
    fn any_single_byte_change_is_caught(
        history in strategies::history(30),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = history.to_bytes().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        let result = RecordedHistory::from_bytes(&bytes, &Limits::DEFAULT);
        prop_assert!(result.is_err(), "byte {} of {} changed, file still read", i, bytes.len());
    }

    /// 300 cases: an edited event in the JSON rendering is caught at its seq by the chain.
    #[test]
    fn an_edited_json_event_is_caught_at_its_seq(
        history in strategies::history(30),
        at in any::<prop::sample::Index>(),
        micros in 1i64..1_000_000,
    ) {
        let mut doc: serde_json::Value = serde_json::from_str(&history.to_json().unwrap()).unwrap();
        let events = doc["events"].as_array_mut().unwrap();
        let i = at.index(events.len());
        let event = &history.events()[i];
        let moved = crate::Timestamp::from_unix_micros(event.recorded_at.as_unix_micros() + micros);
        events[i]["recorded_at"] = serde_json::Value::String(moved.to_rfc3339().unwrap());
        let text = serde_json::to_string(&doc).unwrap();
        match RecordedHistory::from_json(&text, &Limits::DEFAULT) {
            Err(Error::ChainMismatch { seq }) => prop_assert_eq!(seq, event.seq),
            other => prop_assert!(false, "expected a chain mismatch at seq {}, got {:?}", event.seq, other),
        }
    }

    /// 300 cases: arbitrary bytes after a valid file header never panic the file reader,
    /// and neither does arbitrary text the JSON reader.
    #[test]
    fn arbitrary_files_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..1024),
        text in ".{0,256}",
    ) {
        let mut bytes = crate::MAGIC.to_vec();
        bytes.push(crate::FILE_VERSION);
        bytes.push(0x01);
        bytes.extend(body);
        prop_assert!(RecordedHistory::from_bytes(&bytes, &Limits::DEFAULT).is_err());
        let _ = RecordedHistory::from_json(&text, &Limits::DEFAULT);
    }
}
