//! The activity result cache (`RegistryBuilder::cache`, table `reprise.activity_cache`): read
//! before a cached activity's attempt runs, written after it completes, cleared by operators.
//! Nothing here is on the path of activities without a cache policy.

use reprise_history::{ActivityType, DataConverter, Payload};
use reprise_sdk::CachePolicy;

use crate::error::{Error, Result};
use crate::store::{Store, micros};

/// Expired entries of one activity type a write removes on its way, at most: the table keeps
/// itself small without a sweeper, a little at a time.
const PURGE_PER_WRITE: i64 = 100;

/// Where one input's result is kept: the activity type and a hash of the policy's version and
/// the input's plain bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CacheKey {
    activity_type: ActivityType,
    hash: [u8; 32],
    version: String,
}

impl CacheKey {
    /// The key of `input` for `activity_type` under `policy`; None when the input does not
    /// decode (a codec or key missing): such an attempt runs, and fails, as without a cache.
    pub(crate) fn new(
        activity_type: &ActivityType,
        policy: &CachePolicy,
        input: &Payload,
        converter: &DataConverter,
    ) -> Option<CacheKey> {
        let plain = converter.decoded(input).ok()?;
        let mut hasher = blake3::Hasher::new_derive_key("reprise activity cache key v1");
        for part in [activity_type.as_str().as_bytes(), policy.version.as_bytes()] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.update(plain.as_bytes());
        Some(CacheKey {
            activity_type: activity_type.clone(),
            hash: *hasher.finalize().as_bytes(),
            version: policy.version.clone(),
        })
    }
}

impl Store {
    /// The unexpired result kept under `key`, if any.
    pub(crate) async fn cached_result(&self, key: &CacheKey) -> Result<Option<Payload>> {
        let result: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT result FROM reprise.activity_cache
              WHERE activity_type = $2 AND cache_key = $3 AND expires_at > reprise.db_now($1)",
        )
        .bind(self.offset())
        .bind(key.activity_type.as_str())
        .bind(key.hash.as_slice())
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(result.map(Payload::from_bytes).transpose()?)
    }

    /// Keeps `result` under `key` for `policy.ttl` (replacing what was there), then removes a
    /// few expired entries of the same type. Two statements, each its own transaction: the
    /// purge skips rows another writer holds (no lock waits, no deadlock between writers
    /// purging each other's keys) and deletes only what is still expired when it gets there.
    pub(crate) async fn cache_result(
        &self,
        key: &CacheKey,
        policy: &CachePolicy,
        result: &Payload,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO reprise.activity_cache
                    (activity_type, cache_key, version, result, created_at, expires_at)
             VALUES ($2, $3, $4, $5, reprise.db_now($1),
                     reprise.db_now($1) + $6 * interval '1 microsecond')
             ON CONFLICT (activity_type, cache_key) DO UPDATE
                SET version = EXCLUDED.version, result = EXCLUDED.result,
                    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
        )
        .bind(self.offset())
        .bind(key.activity_type.as_str())
        .bind(key.hash.as_slice())
        .bind(&key.version)
        .bind(result.as_bytes())
        .bind(micros(policy.ttl))
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        sqlx::query(
            "DELETE FROM reprise.activity_cache
              WHERE activity_type = $2 AND expires_at <= reprise.db_now($1)
                AND cache_key IN (
                    SELECT cache_key FROM reprise.activity_cache
                     WHERE activity_type = $2 AND expires_at <= reprise.db_now($1)
                     LIMIT $3 FOR UPDATE SKIP LOCKED)",
        )
        .bind(self.offset())
        .bind(key.activity_type.as_str())
        .bind(PURGE_PER_WRITE)
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// Removes the cached results of `activity_type` (of every type when None); returns how
    /// many. Attempts from now on run their code until results are cached again.
    pub async fn clear_activity_cache(&self, activity_type: Option<&ActivityType>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM reprise.activity_cache WHERE $1::text IS NULL OR activity_type = $1",
        )
        .bind(activity_type.map(ActivityType::as_str))
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(activity: &str, version: &str, input: &str) -> CacheKey {
        let converter = DataConverter::default();
        let input = converter.to_payload(&input.to_string()).unwrap();
        let policy = CachePolicy::new(version, Duration::from_secs(60));
        CacheKey::new(
            &ActivityType::new(activity).unwrap(),
            &policy,
            &input,
            &converter,
        )
        .unwrap()
    }

    #[test]
    fn the_key_names_type_version_and_input() {
        assert_eq!(key("a", "v1", "x"), key("a", "v1", "x"));
        assert_ne!(key("a", "v1", "x").hash, key("b", "v1", "x").hash);
        assert_ne!(key("a", "v1", "x").hash, key("a", "v2", "x").hash);
        assert_ne!(key("a", "v1", "x").hash, key("a", "v1", "y").hash);
        // Lengths are framed: moving bytes between type and version is another key.
        assert_ne!(key("ab", "c", "x").hash, key("a", "bc", "x").hash);
    }
}
