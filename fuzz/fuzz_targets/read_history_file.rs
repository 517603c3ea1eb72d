//! Arbitrary bytes into the recorded-history file reader. A file that reads must write
//! back to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_history::{Limits, RecordedHistory};

fuzz_target!(|data: &[u8]| {
    if let Ok(history) = RecordedHistory::from_bytes(data, &Limits::DEFAULT) {
        assert_eq!(history.to_bytes().expect("re-export"), data);
    }
});
