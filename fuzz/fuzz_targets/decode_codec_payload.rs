//! Arbitrary bytes through the codec chain a production reader has (zstd and AES-256-GCM):
//! envelope parsing, key lookup, decompression bounded by the payload limit, decryption.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_codecs::{Aes256Gcm, Keyring, Zstd};
use reprise_history::{DataConverter, Limits, Payload};

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = Keyring::new("k1", [1; 32]) else {
        return;
    };
    let Ok(converter) = DataConverter::new(Limits::DEFAULT.with_max_payload_bytes(1 << 16))
        .with_codec(Zstd::default())
        .and_then(|c| c.with_codec(Aes256Gcm::new(keys)))
    else {
        return;
    };
    if let Ok(payload) = Payload::from_bytes(data.to_vec()) {
        let _ = converter.from_payload::<String>(&payload);
        let _ = converter.from_payload::<Vec<u64>>(&payload);
        if let Ok(Some(value)) = converter.to_json(&payload) {
            // What reads as JSON encodes again and reads back the same.
            if let Ok(again) = converter.to_payload(&value) {
                assert_eq!(converter.to_json(&again).ok().flatten(), Some(value));
            }
        }
    }
});
