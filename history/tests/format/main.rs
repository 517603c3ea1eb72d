//! Integration tests of the history format: fixtures written by earlier versions still
//! decode, and validation reports every broken rule.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixtures;
mod validation;
