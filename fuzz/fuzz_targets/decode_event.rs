//! Arbitrary bytes into the event decoder: an error is fine, a panic or abort is a bug.
//! A decoded event must encode back to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_history::{Event, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data, &Limits::DEFAULT) {
        let again = event
            .encode(&Limits::DEFAULT)
            .expect("a decoded event re-encodes");
        let back = Event::decode(&again, &Limits::DEFAULT).expect("re-encoded event decodes");
        assert_eq!(back, event, "{event:?}");
    }
});
