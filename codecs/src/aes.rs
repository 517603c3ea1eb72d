//! `Aes256Gcm`: authenticated encryption of payloads, with the key id in clear.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload as AeadInput};
use aes_gcm::{AeadCore, Nonce};
use reprise_history::{CodecError, Encoded, PayloadCodec};

use crate::keyring::Keyring;

/// Bytes of the random nonce stored before the ciphertext.
const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag after the ciphertext.
const TAG_LEN: usize = 16;

/// AES-256-GCM encryption of every payload under the keyring's current key. The payload
/// records the key id in clear, and the id is authenticated with the ciphertext, so neither
/// can be swapped unnoticed; any key in the ring decrypts the payloads that name it.
///
/// Body: a 96-bit random nonce, then the ciphertext and its 128-bit tag.
#[derive(Clone, Debug)]
pub struct Aes256Gcm {
    keys: Keyring,
}

impl Aes256Gcm {
    /// Encrypts with `keys`' current key; decrypts with any of them.
    pub fn new(keys: Keyring) -> Aes256Gcm {
        Aes256Gcm { keys }
    }

    /// The keys.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }
}

/// What is authenticated besides the ciphertext: the format, the codec and the key id.
fn associated_data(key_id: &str) -> Vec<u8> {
    format!("reprise payload v1/aes256gcm/{key_id}").into_bytes()
}

impl PayloadCodec for Aes256Gcm {
    fn name(&self) -> &str {
        "aes256gcm"
    }

    fn encode(&self, payload: &[u8]) -> Result<Option<Encoded>, CodecError> {
        let (id, key) = self.keys.current();
        let cipher = aes_gcm::Aes256Gcm::new(&key.0.into());
        let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(id);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                AeadInput {
                    msg: payload,
                    aad: &aad,
                },
            )
            .map_err(|_| CodecError::Failed("AES-256-GCM encryption failed".to_string()))?;
        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        Ok(Some(Encoded {
            note: id.to_string(),
            body,
        }))
    }

    fn decode(&self, note: &str, body: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let key = self.keys.get(note).ok_or_else(|| CodecError::UnknownKey {
            key_id: note.to_string(),
            configured: self.keys.ids().collect::<Vec<_>>().join(", "),
        })?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(CodecError::Malformed(format!(
                "{} bytes, shorter than a nonce and a tag",
                body.len()
            )));
        }
        if body.len() - NONCE_LEN - TAG_LEN > max_len {
            return Err(CodecError::TooLarge { limit: max_len });
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| CodecError::Malformed("short nonce".to_string()))?;
        let cipher = aes_gcm::Aes256Gcm::new(&key.0.into());
        cipher
            .decrypt(
                &Nonce::from(nonce),
                AeadInput {
                    msg: ciphertext,
                    aad: &associated_data(note),
                },
            )
            .map_err(|_| CodecError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use reprise_history::{DataConverter, Error, PayloadFormat};

    use super::*;

    fn ring(id: &str, byte: u8) -> Keyring {
        Keyring::new(id, [byte; 32]).unwrap()
    }

    fn converter(keys: Keyring) -> DataConverter {
        DataConverter::default()
            .with_codec(Aes256Gcm::new(keys))
            .unwrap()
    }

    #[test]
    fn encrypts_under_the_current_key_and_names_it() {
        let c = converter(ring("k1", 1));
        let payload = c.to_payload(&"secret order 1042").unwrap();
        assert_eq!(
            payload.format(),
            PayloadFormat::Codec {
                codec: "aes256gcm",
                note: "k1"
            }
        );
        let needle = b"secret order";
        assert!(
            !payload
                .as_bytes()
                .windows(needle.len())
                .any(|w| w == needle),
            "plaintext leaked into the payload"
        );
        assert_eq!(
            c.from_payload::<String>(&payload).unwrap(),
            "secret order 1042"
        );
    }

    #[test]
    fn a_rotated_key_still_decrypts_old_payloads() {
        let old = converter(ring("k1", 1)).to_payload(&42u32).unwrap();
        let rotated = converter(ring("k2", 2).with_old_key("k1", [1; 32]).unwrap());
        assert_eq!(rotated.from_payload::<u32>(&old).unwrap(), 42);
        let new = rotated.to_payload(&43u32).unwrap();
        assert!(matches!(
            new.format(),
            PayloadFormat::Codec { note: "k2", .. }
        ));
    }

    #[test]
    fn a_missing_key_or_tampered_bytes_are_refused_by_name() {
        let payload = converter(ring("k1", 1)).to_payload(&42u32).unwrap();
        let err = converter(ring("k2", 2))
            .from_payload::<u32>(&payload)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Codec { source: CodecError::UnknownKey { key_id, .. }, .. } if key_id == "k1"),
            "{err}"
        );
        assert!(err.to_string().contains("\"k1\""), "{err}");

        let mut bytes = payload.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = reprise_history::Payload::from_bytes(bytes).unwrap();
        let err = converter(ring("k1", 1))
            .from_payload::<u32>(&tampered)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Codec {
                    source: CodecError::Tampered,
                    ..
                }
            ),
            "{err}"
        );
        // Same key bytes, another id: the id is authenticated too.
        let relabelled = String::from_utf8_lossy(payload.as_bytes())
            .replace("k1", "k9")
            .into_bytes();
        if let Ok(p) = reprise_history::Payload::from_bytes(relabelled) {
            let ring = ring("k9", 1);
            assert!(converter(ring).from_payload::<u32>(&p).is_err());
        }
    }
}
