//! Connections of their own for the loops on every step's path: the engine's batch loops,
//! the worker's claims and its recorder of outcomes.
//!
//! Two things make a pooled connection dearer on that path than a connection a loop keeps:
//! the pool pings each connection as it comes back, a round trip for the server on every
//! use; and PostgreSQL plans a prepared statement afresh for each execution (a custom plan)
//! while its parameters make a custom plan look cheaper than the generic one, which for the
//! large statements of a step batch or an outcome costs more than running them. A loop's
//! own connection reuses one generic plan per statement (`plan_cache_mode` set to
//! `force_generic_plan` for that connection alone). Those statements reach every table
//! through a key or an index, with lateral subqueries where the order matters, so their
//! plan does not depend on the values bound. The pool keeps custom plans for everything
//! else, such as listing runs with optional filters.

use sqlx::{Connection, PgConnection};

use crate::error::{Error, Result};
use crate::store::Store;

/// A loop's own connection, opened when first needed and again after an error.
pub(crate) struct LoopConnection {
    store: Store,
    conn: Option<PgConnection>,
}

impl LoopConnection {
    /// A connection to `store`'s database, not yet opened.
    pub(crate) fn new(store: &Store) -> LoopConnection {
        LoopConnection {
            store: store.clone(),
            conn: None,
        }
    }

    /// Runs `op` on the connection, opening it first if needed. After an error the connection
    /// is closed, so that the next use starts from a fresh session whatever state the error
    /// left (a dead socket, a transaction not yet rolled back).
    pub(crate) async fn run<T>(
        &mut self,
        op: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.open().await?),
        };
        let result = op(conn).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn open(&self) -> Result<PgConnection> {
        let options = self.store.pool().connect_options();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(Error::from_db)?;
        sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut conn)
            .await
            .map_err(Error::from_db)?;
        Ok(conn)
    }
}
