//! The blake3 hash chain over a run's encoded events: `hash_n = blake3(hash_{n-1} || bytes_n)`.
//!
//! `hash_0` is 32 zero bytes. The first event (`WorkflowStarted`) names the run, so the chain
//! of one run can never verify as another's.
//!
//! With a [`ChainKey`] (a secret the processes hold, never the database), links are keyed:
//! `hash_n = blake3_keyed(key, hash_{n-1} || bytes_n)`, a MAC chain that a writer with database
//! access alone cannot extend or rewrite. A link says which it is by which hash it matches
//! (a plain and a keyed hash of the same bytes coincide with probability 2^-256), so a history
//! may start plain and go on keyed (a key given to a deployment that ran without one). Once
//! keyed, a plain link is a forgery ([`Error::ChainNotKeyed`]); a keyed link read without the
//! key cannot be told from a corrupt one ([`Error::ChainMismatch`], whose message says so).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::ids::Seq;

/// A link of the chain: the hash of one event and everything before it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The hash before the first event.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// The hash of the next event, given that event's encoded bytes.
    pub fn next(&self, event_bytes: &[u8]) -> ChainHash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.0);
        hasher.update(event_bytes);
        ChainHash(*hasher.finalize().as_bytes())
    }

    /// The hash of the next event: keyed with `key` if there is one, else plain ([`next`]).
    ///
    /// [`next`]: ChainHash::next
    pub fn next_with(&self, key: Option<&ChainKey>, event_bytes: &[u8]) -> ChainHash {
        let Some(key) = key else {
            return self.next(event_bytes);
        };
        let mut hasher = blake3::Hasher::new_keyed(&key.0);
        hasher.update(&self.0);
        hasher.update(event_bytes);
        ChainHash(*hasher.finalize().as_bytes())
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From 32 raw bytes (as stored in the database).
    pub fn from_slice(bytes: &[u8]) -> Result<ChainHash> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| Error::Decode {
            what: "chain hash",
            source: format!("expected 32 bytes, found {}", bytes.len()).into(),
        })?;
        Ok(ChainHash(array))
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<ChainHash> {
        blake3::Hash::from_hex(text)
            .map(|h| ChainHash(*h.as_bytes()))
            .map_err(|e| Error::Decode {
                what: "chain hash",
                source: Box::new(e),
            })
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            ChainHash::from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(ChainHash)
        }
    }
}

/// The secret that keys the chain: 32 bytes, held by the processes that write and verify
/// histories, never stored in the database. Its `Debug` shows nothing of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    /// A key of these 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> ChainKey {
        ChainKey(bytes)
    }

    /// A key from 64 hex characters (as `REPRISE_CHAIN_KEY` holds it).
    pub fn from_hex(text: &str) -> Result<ChainKey> {
        let text = text.trim();
        let invalid = |why: &str| Error::Decode {
            what: "chain key",
            source: format!("{why}: expected 64 hex characters (32 bytes)").into(),
        };
        if text.len() != 64 {
            return Err(invalid(&format!("{} characters", text.len())));
        }
        let hash = blake3::Hash::from_hex(text).map_err(|_| invalid("not hex"))?;
        Ok(ChainKey(*hash.as_bytes()))
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(<secret>)")
    }
}

/// One stored event as the chain sees it: its seq, its encoded bytes and its recorded hash.
#[derive(Clone, Copy, Debug)]
pub struct ChainLink<'a> {
    /// The event's seq.
    pub seq: Seq,
    /// The event's encoded bytes.
    pub bytes: &'a [u8],
    /// The hash stored with it.
    pub hash: ChainHash,
}

/// Computes the chain over encoded events from the start, returning every link's hash.
pub fn compute<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Vec<ChainHash> {
    let mut hash = ChainHash::GENESIS;
    events
        .into_iter()
        .map(|bytes| {
            hash = hash.next(bytes);
            hash
        })
        .collect()
}

/// Verifies a whole history's links from seq 1, returning the head hash (GENESIS if empty).
///
/// Fails on the first link that is out of order or whose hash does not verify, naming its seq.
pub fn verify<'a>(links: impl IntoIterator<Item = ChainLink<'a>>) -> Result<ChainHash> {
    verify_from(Seq::new(0), ChainHash::GENESIS, links)
}

/// Verifies links that continue a chain whose last verified event is `after` with hash `prev`.
/// Plain links only: a keyed one fails as [`Error::ChainMismatch`] (see [`verify_keyed_from`]).
pub fn verify_from<'a>(
    after: Seq,
    prev: ChainHash,
    links: impl IntoIterator<Item = ChainLink<'a>>,
) -> Result<ChainHash> {
    verify_keyed_from(after, prev, links, None).map(|v| v.head)
}

/// How a chain verified: its head, and the first keyed link (`None`: none is keyed, so a
/// writer with database access could have rewritten it whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The hash of the last link.
    pub head: ChainHash,
    /// The seq of the first keyed link.
    pub keyed_from: Option<Seq>,
}

/// Verifies links from seq 1 with `key` (see the module's documentation).
pub fn verify_keyed<'a>(
    links: impl IntoIterator<Item = ChainLink<'a>>,
    key: Option<&ChainKey>,
) -> Result<Verified> {
    verify_keyed_from(Seq::new(0), ChainHash::GENESIS, links, key)
}

/// Verifies links that continue a chain at `after`/`prev`: each must be the plain hash of its
/// bytes, or the keyed one when `key` is given, and no plain link may follow a keyed one.
pub fn verify_keyed_from<'a>(
    after: Seq,
    prev: ChainHash,
    links: impl IntoIterator<Item = ChainLink<'a>>,
    key: Option<&ChainKey>,
) -> Result<Verified> {
    let mut expected = after.next();
    let mut hash = prev;
    let mut keyed_from = None;
    for link in links {
        if link.seq != expected {
            return Err(Error::SeqOutOfOrder {
                expected,
                found: link.seq,
            });
        }
        if hash.next(link.bytes) == link.hash {
            if keyed_from.is_some() {
                return Err(Error::ChainNotKeyed { seq: link.seq });
            }
        } else if key.is_some_and(|key| hash.next_with(Some(key), link.bytes) == link.hash) {
            keyed_from.get_or_insert(link.seq);
        } else {
            return Err(Error::ChainMismatch { seq: link.seq });
        }
        hash = link.hash;
        expected = expected.next();
    }
    Ok(Verified {
        head: hash,
        keyed_from,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn links(events: &[Vec<u8>], hashes: &[ChainHash]) -> Vec<(Seq, Vec<u8>, ChainHash)> {
        events
            .iter()
            .zip(hashes)
            .enumerate()
            .map(|(i, (bytes, hash))| (Seq::new(i as u64 + 1), bytes.clone(), *hash))
            .collect()
    }

    fn check(links: &[(Seq, Vec<u8>, ChainHash)]) -> Result<ChainHash> {
        verify(links.iter().map(|(seq, bytes, hash)| ChainLink {
            seq: *seq,
            bytes,
            hash: *hash,
        }))
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let h = ChainHash::GENESIS.next(b"event");
        assert_eq!(ChainHash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(ChainHash::from_hex("zz").is_err());
        assert!(ChainHash::from_slice(&[0; 31]).is_err());
    }

    #[test]
    fn chain_is_blake3_of_previous_and_bytes() {
        let h1 = ChainHash::GENESIS.next(b"a");
        let mut input = vec![0u8; 32];
        input.extend_from_slice(b"a");
        assert_eq!(h1.as_bytes(), blake3::hash(&input).as_bytes());
    }

    /// Links over `events` with `key` from seq `keyed_at` on (plain before it).
    fn keyed_links(
        events: &[Vec<u8>],
        key: &ChainKey,
        keyed_at: usize,
    ) -> Vec<(Seq, Vec<u8>, ChainHash)> {
        let mut hash = ChainHash::GENESIS;
        events
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                hash = hash.next_with((i >= keyed_at).then_some(key), bytes);
                (Seq::new(i as u64 + 1), bytes.clone(), hash)
            })
            .collect()
    }

    fn check_keyed(
        links: &[(Seq, Vec<u8>, ChainHash)],
        key: Option<&ChainKey>,
    ) -> Result<Verified> {
        verify_keyed(
            links.iter().map(|(seq, bytes, hash)| ChainLink {
                seq: *seq,
                bytes,
                hash: *hash,
            }),
            key,
        )
    }

    #[test]
    fn a_key_reads_from_hex_and_never_shows() {
        let key = ChainKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(format!("{key:?}"), "ChainKey(<secret>)");
        assert!(ChainKey::from_hex("abcd").is_err());
        assert!(ChainKey::from_hex(&"zz".repeat(32)).is_err());
    }

    proptest! {
        #[test]
        fn a_keyed_chain_verifies_only_with_its_key_and_a_rewrite_without_it_is_named(
            events in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 2..20),
            keyed_at in any::<prop::sample::Index>(),
            forged in any::<prop::sample::Index>(),
            secret in any::<[u8; 32]>(),
        ) {
            let key = ChainKey::from_bytes(secret);
            let keyed_at = keyed_at.index(events.len());
            let links = keyed_links(&events, &key, keyed_at);
            let verified = check_keyed(&links, Some(&key)).unwrap();
            prop_assert_eq!(verified.head, links.last().unwrap().2);
            prop_assert_eq!(verified.keyed_from, Some(Seq::new(keyed_at as u64 + 1)));
            // Without the key (or with another), the first keyed link does not verify.
            let first_keyed = Seq::new(keyed_at as u64 + 1);
            let keyless = matches!(check_keyed(&links, None),
                Err(Error::ChainMismatch { seq }) if seq == first_keyed);
            prop_assert!(keyless);
            let other = ChainKey::from_bytes(secret.map(|b| b ^ 1));
            let wrong_key = matches!(check_keyed(&links, Some(&other)),
                Err(Error::ChainMismatch { seq }) if seq == first_keyed);
            prop_assert!(wrong_key);
            // A writer without the key changes one event and recomputes every hash after it,
            // plain: verified with the key, the first rewritten keyed link is named.
            let at = forged.index(events.len());
            let mut rewritten = links.clone();
            rewritten[at].1.push(0x5a);
            let mut hash = if at == 0 { ChainHash::GENESIS } else { rewritten[at - 1].2 };
            for link in &mut rewritten[at..] {
                hash = hash.next(&link.1);
                link.2 = hash;
            }
            let result = check_keyed(&rewritten, Some(&key));
            if at > keyed_at {
                let named = matches!(result,
                    Err(Error::ChainNotKeyed { seq }) if seq == Seq::new(at as u64 + 1));
                prop_assert!(named);
            } else {
                // Rewritten from before the first keyed link: all plain, so it verifies, and
                // says that nothing of it is keyed.
                prop_assert_eq!(result.unwrap().keyed_from, None);
            }
        }
    }

    proptest! {
        #[test]
        fn any_change_names_the_first_bad_seq(
            events in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..20),
            pick in any::<prop::sample::Index>(),
            byte in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let hashes = compute(events.iter().map(Vec::as_slice));
            let mut all = links(&events, &hashes);
            prop_assert_eq!(check(&all).unwrap(), *hashes.last().unwrap());

            let at = pick.index(all.len());
            if all[at].1.is_empty() {
                all[at].1.push(flip);
            } else {
                let i = byte.index(all[at].1.len());
                all[at].1[i] ^= flip;
            }
            match check(&all) {
                Err(Error::ChainMismatch { seq }) => prop_assert_eq!(seq, Seq::new(at as u64 + 1)),
                other => prop_assert!(false, "expected mismatch at {}, got {:?}", at + 1, other),
            }
        }

        #[test]
        fn reordering_or_dropping_events_is_caught(
            events in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 2..10),
            a in any::<prop::sample::Index>(),
        ) {
            let hashes = compute(events.iter().map(Vec::as_slice));
            let mut all = links(&events, &hashes);
            let i = a.index(all.len() - 1);
            all.remove(i);
            prop_assert!(check(&all).is_err());
        }
    }
}
