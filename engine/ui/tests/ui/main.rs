//! The web UI, tested in a real browser (headless Chromium over chromedriver) and over bare
//! HTTP, against a real PostgreSQL with an engine and a worker running.

// Test helpers fail loudly on purpose: a broken fixture should stop the test at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod browser;
mod support;
