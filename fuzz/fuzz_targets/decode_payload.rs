//! Arbitrary bytes into the payload decoder, as a few shapes user code commonly decodes.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use reprise_history::{Failure, Payload};

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = Payload::from_bytes(data.to_vec()) {
        let _ = payload.decode::<String>();
        let _ = payload.decode::<Vec<u64>>();
        let _ = payload.decode::<(String, Option<i32>, Vec<u8>)>();
        let _ = payload.decode::<BTreeMap<String, Vec<String>>>();
        let _ = payload.decode::<Failure>();
    }
});
