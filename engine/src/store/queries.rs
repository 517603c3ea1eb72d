//! Queries in flight (table `reprise.queries`, migration 0007): a client asks, an engine that
//! runs the workflow's type takes the query, answers it and says so; the client reads the
//! answer and deletes the row. Nothing of a query travels over NOTIFY but its id.

use std::time::Duration;

use reprise_history::{Payload, RunId, Seq};
use reprise_sdk::QueryError;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::rows::seq;

/// Channel notified (with no payload) when a query is asked.
pub(crate) const QUERIES_CHANNEL: &str = "reprise_queries";
/// Channel notified with a query's id when it is answered.
pub(crate) const ANSWERS_CHANNEL: &str = "reprise_answers";

/// Why a query got no answer, as the engine that took it wrote it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryRefusal {
    /// The workflow's code refused it: unknown name, input that does not decode, a panic.
    #[error(transparent)]
    Workflow(#[from] QueryError),
    /// The engine could not rebuild the run to ask it (its history does not replay on that
    /// engine's code: a parked run, say).
    #[error("the run could not be rebuilt to answer it: {message}")]
    Unreplayable {
        /// Why.
        message: String,
    },
    /// A refusal of a kind this build does not know (written by a newer engine).
    #[error("{message}")]
    Other {
        /// What the engine said.
        message: String,
    },
}

impl QueryRefusal {
    /// How the refusal is stored, and its message and registered names.
    fn to_stored(&self) -> (&'static str, String, Vec<String>) {
        match self {
            QueryRefusal::Workflow(QueryError::UnknownQuery { registered, .. }) => {
                ("unknown_query", self.to_string(), registered.clone())
            }
            QueryRefusal::Workflow(QueryError::UndecodableInput { message, .. }) => {
                ("undecodable_input", message.clone(), Vec::new())
            }
            QueryRefusal::Workflow(QueryError::UnencodableAnswer { message, .. }) => {
                ("unencodable_answer", message.clone(), Vec::new())
            }
            QueryRefusal::Workflow(QueryError::Panicked { message, .. }) => {
                ("panicked", message.clone(), Vec::new())
            }
            QueryRefusal::Workflow(other) => ("failed", other.to_string(), Vec::new()),
            QueryRefusal::Unreplayable { message } => ("unreplayable", message.clone(), Vec::new()),
            QueryRefusal::Other { message } => ("failed", message.clone(), Vec::new()),
        }
    }

    /// A stored refusal; a kind this build does not know is `Other`, with its message.
    fn from_stored(
        name: &str,
        kind: &str,
        message: String,
        registered: Vec<String>,
    ) -> QueryRefusal {
        let name = name.to_string();
        match kind {
            "unknown_query" => QueryError::UnknownQuery { name, registered }.into(),
            "undecodable_input" => QueryError::UndecodableInput { name, message }.into(),
            "unencodable_answer" => QueryError::UnencodableAnswer { name, message }.into(),
            "panicked" => QueryError::Panicked { name, message }.into(),
            "unreplayable" => QueryRefusal::Unreplayable { message },
            _ => QueryRefusal::Other { message },
        }
    }
}

/// A query waiting for an engine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitingQuery {
    pub(crate) query_id: uuid::Uuid,
    pub(crate) run_id: RunId,
    /// How long it has waited.
    pub(crate) age: Duration,
}

/// A query an engine took: it answers it.
#[derive(Clone, Debug)]
pub(crate) struct TakenQuery {
    pub(crate) run_id: RunId,
    pub(crate) name: String,
    pub(crate) input: Payload,
    /// The run's head as the query was taken: a cached orchestrator answers only at it.
    pub(crate) head_seq: Seq,
}

/// A query to ask.
pub(crate) struct Asked<'a> {
    /// The asker's id for it (it watches for the answer before asking).
    pub(crate) query_id: uuid::Uuid,
    pub(crate) run_id: RunId,
    pub(crate) workflow_type: &'a str,
    pub(crate) name: &'a str,
    pub(crate) input: &'a Payload,
    /// How long the asker waits: the row is of no use afterwards.
    pub(crate) expires_in: Duration,
}

impl Store {
    /// Records a query and wakes the engines.
    pub(crate) async fn ask_query(&self, asked: Asked<'_>) -> Result<()> {
        sqlx::query(
            "WITH q AS (
                 INSERT INTO reprise.queries (query_id, run_id, workflow_type, name, input, expires_at)
                 VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 microsecond')
                 RETURNING 1)
             SELECT pg_notify($7, '') FROM q",
        )
        .bind(asked.query_id)
        .bind(asked.run_id.as_uuid())
        .bind(asked.workflow_type)
        .bind(asked.name)
        .bind(asked.input.as_bytes())
        .bind(super::micros(asked.expires_in))
        .bind(QUERIES_CHANNEL)
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// The answer to a query, if it has one: read and deleted at once. `Ok(None)`: not
    /// answered yet.
    pub(crate) async fn take_answer(
        &self,
        query_id: uuid::Uuid,
    ) -> Result<Option<std::result::Result<Payload, QueryRefusal>>> {
        let row = sqlx::query(
            "DELETE FROM reprise.queries WHERE query_id = $1 AND answered_at IS NOT NULL
             RETURNING name, answer, error_kind, error_message, registered",
        )
        .bind(query_id)
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        let Some(row) = row else { return Ok(None) };
        let name: String = row.try_get("name").map_err(Error::from_db)?;
        let answer: Option<Vec<u8>> = row.try_get("answer").map_err(Error::from_db)?;
        if let Some(bytes) = answer {
            return Ok(Some(Ok(Payload::from_bytes(bytes)?)));
        }
        let kind: Option<String> = row.try_get("error_kind").map_err(Error::from_db)?;
        let message: Option<String> = row.try_get("error_message").map_err(Error::from_db)?;
        let registered: Option<Vec<String>> = row.try_get("registered").map_err(Error::from_db)?;
        let refusal = QueryRefusal::from_stored(
            &name,
            kind.as_deref().unwrap_or_default(),
            message.unwrap_or_default(),
            registered.unwrap_or_default(),
        );
        Ok(Some(Err(refusal)))
    }

    /// Deletes a query its asker gave up on.
    pub(crate) async fn forget_query(&self, query_id: uuid::Uuid) -> Result<()> {
        sqlx::query("DELETE FROM reprise.queries WHERE query_id = $1")
            .bind(query_id)
            .execute(self.pool())
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }

    /// Queries no engine has taken yet, of the types given, oldest first (at most 100).
    pub(crate) async fn waiting_queries(&self, types: &[String]) -> Result<Vec<WaitingQuery>> {
        let rows = sqlx::query(
            "SELECT query_id, run_id, (EXTRACT(EPOCH FROM now() - asked_at) * 1000000)::bigint AS age
               FROM reprise.queries
              WHERE taken_at IS NULL AND expires_at > now() AND workflow_type = ANY($1)
              ORDER BY asked_at LIMIT 100",
        )
        .bind(types)
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter()
            .map(|row| {
                let age: i64 = row.try_get("age").map_err(Error::from_db)?;
                Ok(WaitingQuery {
                    query_id: row.try_get("query_id").map_err(Error::from_db)?,
                    run_id: RunId::from_uuid(row.try_get("run_id").map_err(Error::from_db)?),
                    age: Duration::from_micros(u64::try_from(age).unwrap_or(0)),
                })
            })
            .collect()
    }

    /// Takes a waiting query, unless another engine did: with the run's head as of now.
    pub(crate) async fn take_query(&self, query_id: uuid::Uuid) -> Result<Option<TakenQuery>> {
        let row = sqlx::query(
            "UPDATE reprise.queries q SET taken_at = now()
               FROM reprise.runs r
              WHERE q.query_id = $1 AND q.taken_at IS NULL AND r.run_id = q.run_id
             RETURNING q.run_id, q.name, q.input, r.head_seq",
        )
        .bind(query_id)
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        let Some(row) = row else { return Ok(None) };
        let input: Vec<u8> = row.try_get("input").map_err(Error::from_db)?;
        Ok(Some(TakenQuery {
            run_id: RunId::from_uuid(row.try_get("run_id").map_err(Error::from_db)?),
            name: row.try_get("name").map_err(Error::from_db)?,
            input: Payload::from_bytes(input)?,
            head_seq: seq(&row, "head_seq")?,
        }))
    }

    /// Writes a taken query's answer and tells its asker.
    pub(crate) async fn answer_query(
        &self,
        query_id: uuid::Uuid,
        answer: &std::result::Result<Payload, QueryRefusal>,
    ) -> Result<()> {
        let (payload, refusal) = match answer {
            Ok(payload) => (Some(payload.as_bytes()), None),
            Err(refusal) => (None, Some(refusal.to_stored())),
        };
        let (kind, message, registered) = match refusal {
            Some((kind, message, registered)) => (Some(kind), Some(message), Some(registered)),
            None => (None, None, None),
        };
        sqlx::query(
            "WITH a AS (
                 UPDATE reprise.queries
                    SET answered_at = now(), answer = $2, error_kind = $3, error_message = $4,
                        registered = $5
                  WHERE query_id = $1
                 RETURNING query_id)
             SELECT pg_notify($6, query_id::text) FROM a",
        )
        .bind(query_id)
        .bind(payload)
        .bind(kind)
        .bind(message)
        .bind(registered)
        .bind(ANSWERS_CHANNEL)
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// Hands a taken query back, unanswered, for any engine to take.
    pub(crate) async fn hand_back_query(&self, query_id: uuid::Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE reprise.queries SET taken_at = NULL WHERE query_id = $1 AND answered_at IS NULL",
        )
        .bind(query_id)
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// Deletes queries left a minute past their expiry (their askers crashed); returns how
    /// many.
    pub(crate) async fn drop_expired_queries(&self) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM reprise.queries WHERE expires_at < now() - interval '1 minute'",
        )
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(done.rows_affected())
    }
}
