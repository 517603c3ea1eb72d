//! `Keyring`: the encryption keys an application holds, by id; the first one encrypts.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;

/// The environment variable the CLI reads keys from, and that applications are encouraged to
/// use too, so that both are configured the same way.
pub const KEYS_ENV: &str = "REPRISE_PAYLOAD_KEYS";

/// A 256-bit key. Never printed.
#[derive(Clone)]
pub(crate) struct Key(pub(crate) [u8; 32]);

/// Encryption keys by id. New payloads are encrypted with the current key; every key in the
/// ring decrypts the payloads that name it, so a rotated-out key is kept until no stored
/// payload needs it.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: BTreeMap<String, Key>,
}

/// A key or key list that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key id breaks the rules.
    #[error("invalid key id {id:?}: {reason}")]
    InvalidId {
        /// The id given (shortened).
        id: String,
        /// The rule it broke.
        reason: &'static str,
    },
    /// A key is not 32 bytes of base64.
    #[error("key {id:?} is not a 256-bit key: {reason}")]
    InvalidKey {
        /// The key's id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The same id appears twice.
    #[error("key id {id:?} appears twice")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// No key was given.
    #[error("no keys: expected `id:base64key[,id:base64key...]`, the current key first")]
    Empty,
    /// The environment variable is not set (or not Unicode).
    #[error("environment variable {name} is not set; it holds `id:base64key[,id:base64key...]`")]
    MissingEnv {
        /// The variable.
        name: String,
    },
}

impl Keyring {
    /// A ring whose current key is `key` (32 bytes) under `id`.
    pub fn new(id: &str, key: [u8; 32]) -> Result<Keyring, KeyError> {
        check_id(id)?;
        Ok(Keyring {
            current: id.to_string(),
            keys: BTreeMap::from([(id.to_string(), Key(key))]),
        })
    }

    /// Adds an older key that still decrypts the payloads that name it.
    pub fn with_old_key(mut self, id: &str, key: [u8; 32]) -> Result<Keyring, KeyError> {
        check_id(id)?;
        if self.keys.contains_key(id) {
            return Err(KeyError::DuplicateId { id: id.to_string() });
        }
        self.keys.insert(id.to_string(), Key(key));
        Ok(self)
    }

    /// Parses `id:base64key[,id:base64key...]`: the first key is the current one. Keys are 32
    /// bytes in standard base64 (`openssl rand -base64 32` makes one).
    pub fn parse(text: &str) -> Result<Keyring, KeyError> {
        let mut entries = text.split(',').map(str::trim).filter(|e| !e.is_empty());
        let first = entries.next().ok_or(KeyError::Empty)?;
        let (id, key) = parse_entry(first)?;
        let mut ring = Keyring::new(&id, key)?;
        for entry in entries {
            let (id, key) = parse_entry(entry)?;
            ring = ring.with_old_key(&id, key)?;
        }
        Ok(ring)
    }

    /// Parses the keys from an environment variable (see [`Keyring::parse`] and [`KEYS_ENV`]).
    pub fn from_env(name: &str) -> Result<Keyring, KeyError> {
        let text = std::env::var(name).map_err(|_| KeyError::MissingEnv {
            name: name.to_string(),
        })?;
        Keyring::parse(&text)
    }

    /// The id new payloads are encrypted under.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Every key id in the ring.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub(crate) fn current(&self) -> (&str, &Key) {
        // The current id is always in the map: `new` puts it there and nothing removes keys.
        match self.keys.get_key_value(&self.current) {
            Some((id, key)) => (id.as_str(), key),
            None => unreachable!("the current key is always in the ring"),
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Key> {
        self.keys.get(id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn parse_entry(entry: &str) -> Result<(String, [u8; 32]), KeyError> {
    let (id, key) = entry.split_once(':').ok_or_else(|| KeyError::InvalidKey {
        id: entry.chars().take(16).collect(),
        reason: "expected `id:base64key`".to_string(),
    })?;
    check_id(id)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|e| KeyError::InvalidKey {
            id: id.to_string(),
            reason: format!("not base64: {e}"),
        })?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyError::InvalidKey {
            id: id.to_string(),
            reason: format!("{} bytes, expected 32", b.len()),
        })?;
    Ok((id.to_string(), key))
}

/// Key ids are stored in clear in every payload: short, printable, no separators.
fn check_id(id: &str) -> Result<(), KeyError> {
    let invalid = |reason| KeyError::InvalidId {
        id: id.chars().take(64).collect(),
        reason,
    };
    if id.is_empty() || id.len() > 64 {
        return Err(invalid("must be 1 to 64 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_keys_current_first() {
        let ring = Keyring::parse(&format!("new:{KEY_A}, old:{KEY_A}")).unwrap();
        assert_eq!(ring.current_id(), "new");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["new", "old"]);
        assert!(
            !format!("{ring:?}").contains(KEY_A),
            "keys are never printed"
        );
    }

    #[test]
    fn bad_key_lists_are_typed_errors() {
        assert!(matches!(Keyring::parse(""), Err(KeyError::Empty)));
        assert!(matches!(
            Keyring::parse("k1:c2hvcnQ="),
            Err(KeyError::InvalidKey { .. })
        ));
        assert!(matches!(
            Keyring::parse(&format!("a b:{KEY_A}")),
            Err(KeyError::InvalidId { .. })
        ));
        assert!(matches!(
            Keyring::parse(&format!("k:{KEY_A},k:{KEY_A}")),
            Err(KeyError::DuplicateId { .. })
        ));
        assert!(matches!(
            Keyring::from_env("REPRISE_TEST_SURELY_UNSET_VARIABLE"),
            Err(KeyError::MissingEnv { .. })
        ));
    }
}
