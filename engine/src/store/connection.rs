//! Connections of their own for the loops on every step's path: the engine's batch loops,
//! the worker's claims and its recorder of outcomes.
//!
//! Two things make a pooled connection dearer on that path than a connection a loop keeps:
//! the pool pings each connection as it comes back, a round trip for the server on every
//! use; and PostgreSQL plans a prepared statement afresh for each execution (a custom plan)
//! while its parameters make a custom plan look cheaper than the generic one, which for the
//! large statements of a step batch or an outcome costs more than running them. A loop's
//! own connection reuses one generic plan per statement (`plan_cache_mode` set to
//! `force_generic_plan` for that connection alone). The pool keeps custom plans for
//! everything else, such as listing runs with optional filters.
//!
//! A generic plan lives as long as the connection, or until new statistics of its tables
//! invalidate it, so it must not depend on how big the tables were when it was made: a plan
//! made on a fresh install, when every table looks empty, would otherwise scan tables that
//! have since grown to millions of rows (the benchmark caught steps scanning every run and
//! outcomes reading a whole index of leases). Each statement on the path therefore names its
//! rows by key, in shapes that leave the planner no other way in:
//!
//! - rows to change are picked by `key = ANY (ARRAY(subquery))`, an index condition, never
//!   by a join that the planner could start from the table's side;
//! - rows to look up one by one sit in a `LATERAL` subquery fenced with `OFFSET 0`, whose only
//!   conditions are the key's;
//! - a condition that a partial index's predicate would match is written so that it does not
//!   (`num_nulls(x) = 1` for `x IS NULL`), where that index would be read from end to end;
//! - and the connection turns off sequential scans, hash joins and merge joins, and prices
//!   a random page read like a cached one, so that nested loops over keys cost least.
//!
//! `tests/integration/plans.rs` checks every such statement's plan, on tables never analysed,
//! analysed while empty, and analysed with 20,000 runs in them.

use sqlx::{Connection, PgConnection};

use crate::error::{Error, Result};
use crate::store::Store;

/// Session settings of a loop's connection, sent with its startup (no round trip of their
/// own): one generic plan per statement, made of keyed lookups whatever the statistics say
/// (see the module's documentation).
pub const LOOP_SESSION_SETTINGS: [(&str, &str); 5] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("random_page_cost", "1.1"),
    ("enable_seqscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
];

/// The statements on every step's path, and the others with binders, by name: what their
/// plans must get right (every one reads its tables by key).
pub fn hot_statements() -> Vec<(&'static str, &'static str)> {
    super::bind::bound_statements()
        .into_iter()
        .map(|s| (s.name, s.sql))
        .collect()
}

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
        let options = self
            .store
            .pool()
            .connect_options()
            .as_ref()
            .clone()
            .options(LOOP_SESSION_SETTINGS);
        PgConnection::connect_with(&options)
            .await
            .map_err(Error::from_db)
    }
}
