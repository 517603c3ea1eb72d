//! Payload codecs for Reprise: [`Zstd`] compression over a size threshold, and [`Aes256Gcm`]
//! authenticated encryption with a key id on every payload and key rotation ([`Keyring`]).
//!
//! Add them to the [`DataConverter`](reprise_history::DataConverter) that the registry and
//! the client use; compression goes first, since ciphertext does not compress:
//!
//! ```
//! use reprise_codecs::{Aes256Gcm, Keyring, Zstd};
//! use reprise_history::DataConverter;
//!
//! // In production: Keyring::from_env("REPRISE_PAYLOAD_KEYS")?, the same variable the CLI reads.
//! let keys = Keyring::parse("2026-11:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
//! let converter = DataConverter::default()
//!     .with_codec(Zstd::default())?
//!     .with_codec(Aes256Gcm::new(keys))?;
//! let payload = converter.to_payload(&"card 4242")?;
//! assert_eq!(converter.from_payload::<String>(&payload)?, "card 4242");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aes;
mod keyring;
mod zstd_codec;

pub use aes::Aes256Gcm;
pub use keyring::{KEYS_ENV, KeyError, Keyring};
pub use zstd_codec::Zstd;
