//! A run's ends, read for those who wait on it or describe it: where it stands (open,
//! continued, closed with its last event) and its first event, each checked against the
//! chain without reading the rest of the history.

use reprise_history::{ChainHash, Event, RunId, RunState, Seq, chain};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::rows::{run_state, seq};

/// Where a run stands for someone awaiting its result.
#[derive(Clone, Debug)]
pub(crate) enum RunEnd {
    /// Still open; parked (waiting for fixed code) if there is a reason.
    Open { parked_reason: Option<String> },
    /// Continued as a new run.
    ContinuedAs(RunId),
    /// Closed with this event.
    Closed(Box<Event>),
}

impl Store {
    /// Where a run stands for someone awaiting its result, in one statement: open, continued
    /// as a new run, or closed with its last event. That event is checked against the chain
    /// hash before it and the run's head hash, without reading the rest of the history.
    pub(crate) async fn run_end(&self, run_id: RunId) -> Result<Option<RunEnd>> {
        let row = sqlx::query(
            "SELECT r.status, r.head_seq, r.head_hash, r.parked_reason,
                    (SELECT n.run_id FROM reprise.runs n WHERE n.previous_run_id = r.run_id LIMIT 1) AS next_run_id,
                    l.event, l.hash, p.hash AS prev_hash
               FROM reprise.runs r
               LEFT JOIN reprise.history l
                 ON r.status <> 'running' AND l.run_id = r.run_id AND l.seq = r.head_seq
               LEFT JOIN reprise.history p
                 ON r.status <> 'running' AND p.run_id = r.run_id AND p.seq = r.head_seq - 1
              WHERE r.run_id = $1",
        )
        .bind(run_id.as_uuid())
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        let Some(row) = row else { return Ok(None) };
        let status = run_state(&row, "status")?;
        if status.is_open() {
            let parked_reason = row.try_get("parked_reason").map_err(Error::from_db)?;
            return Ok(Some(RunEnd::Open { parked_reason }));
        }
        let next: Option<uuid::Uuid> = row.try_get("next_run_id").map_err(Error::from_db)?;
        // A continued run goes on in its next run; a failed or timed-out one in its retry, if
        // it was retried (or in a reset of it).
        let followed = match status {
            RunState::ContinuedAsNew | RunState::Failed | RunState::TimedOut => true,
            RunState::Running
            | RunState::Completed
            | RunState::Cancelled
            | RunState::Terminated => false,
        };
        if let (Some(next), true) = (next, followed) {
            return Ok(Some(RunEnd::ContinuedAs(RunId::from_uuid(next))));
        }
        let corrupt = |reason: String| Error::Corrupt {
            what: format!("last event of run {run_id}"),
            reason,
        };
        let head_seq = seq(&row, "head_seq")?;
        let bytes: Option<Vec<u8>> = row.try_get("event").map_err(Error::from_db)?;
        let hash: Option<Vec<u8>> = row.try_get("hash").map_err(Error::from_db)?;
        let prev: Option<Vec<u8>> = row.try_get("prev_hash").map_err(Error::from_db)?;
        let head_hash: Vec<u8> = row.try_get("head_hash").map_err(Error::from_db)?;
        let (Some(bytes), Some(hash)) = (bytes, hash) else {
            return Err(corrupt(format!("event {head_seq} is missing")));
        };
        let prev = match prev {
            Some(prev) => ChainHash::from_slice(&prev)?,
            None if head_seq == Seq::FIRST => ChainHash::GENESIS,
            None => return Err(corrupt(format!("event {} is missing", head_seq.get() - 1))),
        };
        let after = Seq::new(head_seq.get() - 1);
        let link = chain::ChainLink {
            seq: head_seq,
            bytes: &bytes,
            hash: ChainHash::from_slice(&hash)?,
        };
        let verified = chain::verify_keyed_from(after, prev, [link], self.chain_key())?;
        if verified.head != ChainHash::from_slice(&head_hash)? {
            return Err(corrupt("does not match the run's head hash".to_string()));
        }
        // A plain closing link, read by a process holding the key: a writer without the key
        // (who may insert rows) appended it, unless the run was plain from its start (it began
        // before the key was given). Its first link says which.
        if self.chain_key().is_some()
            && verified.keyed_from.is_none()
            && head_seq != Seq::FIRST
            && self.first_link_is_keyed(run_id).await?
        {
            return Err(reprise_history::Error::ChainNotKeyed { seq: head_seq }.into());
        }
        let event = Event::decode(&bytes, self.limits())?;
        Ok(Some(RunEnd::Closed(Box::new(event))))
    }

    /// Whether a run's first link is keyed with this store's key.
    async fn first_link_is_keyed(&self, run_id: RunId) -> Result<bool> {
        let Some((bytes, hash)) = self.first_link(run_id).await? else {
            return Ok(false);
        };
        let link = chain::ChainLink {
            seq: Seq::FIRST,
            bytes: &bytes,
            hash,
        };
        Ok(chain::verify_keyed([link], self.chain_key()).is_ok_and(|v| v.keyed_from.is_some()))
    }

    /// A run's first event as stored, and its chain hash.
    async fn first_link(&self, run_id: RunId) -> Result<Option<(Vec<u8>, ChainHash)>> {
        let row =
            sqlx::query("SELECT event, hash FROM reprise.history WHERE run_id = $1 AND seq = 1")
                .bind(run_id.as_uuid())
                .fetch_optional(self.pool())
                .await
                .map_err(Error::from_db)?;
        row.map(|row| {
            let bytes: Vec<u8> = row.try_get("event").map_err(Error::from_db)?;
            let hash: Vec<u8> = row.try_get("hash").map_err(Error::from_db)?;
            Ok((bytes, ChainHash::from_slice(&hash)?))
        })
        .transpose()
    }

    /// A run's first event (`WorkflowStarted`, with the input), checked against its chain hash
    /// without reading the rest of the history.
    pub(crate) async fn first_event(&self, run_id: RunId) -> Result<Event> {
        let (bytes, hash) = self
            .first_link(run_id)
            .await?
            .ok_or_else(|| Error::Corrupt {
                what: format!("history of run {run_id}"),
                reason: "event 1 is missing".to_string(),
            })?;
        let link = chain::ChainLink {
            seq: Seq::FIRST,
            bytes: &bytes,
            hash,
        };
        chain::verify_keyed(Some(link), self.chain_key())?;
        Ok(Event::decode(&bytes, self.limits())?)
    }
}
