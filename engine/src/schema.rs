//! The database schema: the embedded migrations from `migrations/` and how they are applied.
//!
//! Reprise keeps its tables, and its migration bookkeeping, in the `reprise` schema, so it
//! can share a database with an application (and with that application's own sqlx
//! migrations) without a clash.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::error::{Error, Result};

/// Key of the session-level advisory lock held while migrating: two processes starting at
/// once apply the migrations one after the other, never interleaved. ("RPRSMIGR" in ASCII.)
pub const MIGRATION_LOCK_KEY: i64 = 0x5250_5253_4d49_4752;

/// The table, in the `reprise` schema, that records which migrations ran.
const MIGRATIONS_TABLE: &str = "reprise._migrations";

fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.create_schema("reprise");
    // sqlx's own lock is keyed by database name, shared with the application's migrations;
    // we take our own instead.
    migrator.set_locking(false);
    migrator
}

/// The schema version this build expects: the newest embedded migration.
pub fn expected_version() -> i64 {
    migrator().iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies every pending migration under the advisory lock; returns the schema version.
/// Running it again, or from several processes at once, is safe. A database already at this
/// build's version (or newer) is left alone without a statement of DDL, so that a process
/// logged in under a role that may not create anything (`reprise_engine`, `reprise_worker`:
/// migration 0012) starts on a database its owner migrated.
pub async fn migrate(pool: &PgPool) -> Result<i64> {
    if let Some(version) = schema_version(pool).await?
        && version >= expected_version()
    {
        return Ok(version);
    }
    let mut conn = pool.acquire().await.map_err(Error::from_db)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    let applied = migrator().run(&mut *conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    applied?;
    unlocked.map_err(Error::from_db)?;
    Ok(schema_version(pool).await?.unwrap_or(0))
}

/// The newest migration applied to the database, or `None` if Reprise was never migrated there.
pub async fn schema_version(pool: &PgPool) -> Result<Option<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(MIGRATIONS_TABLE)
        .fetch_one(pool)
        .await
        .map_err(Error::from_db)?;
    if !exists {
        return Ok(None);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM reprise._migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(Error::from_db)?;
    Ok(version)
}
