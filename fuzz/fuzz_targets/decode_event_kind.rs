//! Arbitrary bytes into the inbox-row decoder (`EventKind::decode`). A decoded kind must encode
//! back to bytes that decode to the same kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_history::{EventKind, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(kind) = EventKind::decode(data, &Limits::DEFAULT) {
        let again = kind.encode(&Limits::DEFAULT).expect("a decoded kind re-encodes");
        let back = EventKind::decode(&again, &Limits::DEFAULT).expect("re-encoded kind decodes");
        assert_eq!(back, kind);
    }
});
