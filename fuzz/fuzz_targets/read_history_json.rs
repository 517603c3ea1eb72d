//! Arbitrary text into the JSON history reader. A history that reads must render and read
//! back to the same history.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_history::{Limits, RecordedHistory};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(history) = RecordedHistory::from_json(text, &Limits::DEFAULT) {
        let json = history.to_json().expect("re-render");
        let back = RecordedHistory::from_json(&json, &Limits::DEFAULT).expect("re-read");
        assert_eq!(back, history);
    }
});
