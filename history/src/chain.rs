//! The blake3 hash chain over a run's encoded events: `hash_n = blake3(hash_{n-1} || bytes_n)`.
//!
//! `hash_0` is 32 zero bytes. The first event (`WorkflowStarted`) names the run, so the chain
//! of one run can never verify as another's.

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
pub fn verify_from<'a>(
    after: Seq,
    prev: ChainHash,
    links: impl IntoIterator<Item = ChainLink<'a>>,
) -> Result<ChainHash> {
    let mut expected = after.next();
    let mut hash = prev;
    for link in links {
        if link.seq != expected {
            return Err(Error::SeqOutOfOrder {
                expected,
                found: link.seq,
            });
        }
        hash = hash.next(link.bytes);
        if hash != link.hash {
            return Err(Error::ChainMismatch { seq: link.seq });
        }
        expected = expected.next();
    }
    Ok(hash)
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
