//! `Zstd`: compresses payloads over a size threshold.

use reprise_history::{CodecError, Encoded, PayloadCodec};

/// zstd compression of payloads at least `threshold` bytes long (smaller ones, and ones that
/// do not shrink, are left as they are). Decompression stops at the payload size limit, so a
/// crafted body cannot expand without bound.
#[derive(Clone, Debug)]
pub struct Zstd {
    threshold: usize,
    level: i32,
}

impl Default for Zstd {
    /// Payloads of 1 KiB and more, at zstd's default level (3).
    fn default() -> Self {
        Zstd {
            threshold: 1024,
            level: 3,
        }
    }
}

impl Zstd {
    /// Compresses payloads of at least `threshold` bytes.
    pub fn with_threshold(mut self, threshold: usize) -> Zstd {
        self.threshold = threshold;
        self
    }

    /// The zstd level (1 fastest to 22 smallest).
    pub fn with_level(mut self, level: i32) -> Zstd {
        self.level = level;
        self
    }
}

impl PayloadCodec for Zstd {
    fn name(&self) -> &str {
        "zstd"
    }

    fn encode(&self, payload: &[u8]) -> Result<Option<Encoded>, CodecError> {
        if payload.len() < self.threshold {
            return Ok(None);
        }
        let body = zstd::bulk::compress(payload, self.level)
            .map_err(|e| CodecError::Failed(format!("zstd compression failed: {e}")))?;
        if body.len() >= payload.len() {
            return Ok(None);
        }
        Ok(Some(Encoded {
            note: String::new(),
            body,
        }))
    }

    fn decode(&self, _note: &str, body: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        if let Some(size) = zstd::bulk::Decompressor::upper_bound(body)
            && size > max_len
        {
            return Err(CodecError::TooLarge { limit: max_len });
        }
        zstd::bulk::decompress(body, max_len)
            .map_err(|e| CodecError::Malformed(format!("zstd: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_large_payloads_only() {
        let codec = Zstd::default();
        assert_eq!(codec.encode(b"\x02\"short\"").unwrap(), None);
        let big = format!("\x02\"{}\"", "abc".repeat(2000));
        let encoded = codec.encode(big.as_bytes()).unwrap().unwrap();
        assert!(encoded.body.len() < big.len() / 10);
        let back = codec.decode("", &encoded.body, 1 << 20).unwrap();
        assert_eq!(back, big.as_bytes());
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let body = zstd::bulk::compress(&zeros, 3).unwrap();
        let err = Zstd::default().decode("", &body, 4096).unwrap_err();
        assert!(
            matches!(err, CodecError::TooLarge { .. } | CodecError::Malformed(_)),
            "{err}"
        );
        let err = Zstd::default().decode("", b"not zstd", 4096).unwrap_err();
        assert!(matches!(err, CodecError::Malformed(_)), "{err}");
    }
}
