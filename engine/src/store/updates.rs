//! Updates as their callers see them (table `reprise.updates`, migration 0007): requested
//! (and delivered to the run's inbox) once per id, then accepted, completed or refused by the
//! steps of the run (see `reprise_sdk::Effects`).

use reprise_history::{
    EventKind, Failure, Payload, RunId, StoredValue, UpdateAccepted, UpdateOutcome,
};
use reprise_sdk::{Effects, UpdateRefusal};
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::inbox::{Delivery, deliver};
use crate::store::rows::seq_param;
use crate::store::{ANSWERS_CHANNEL, Store, WriteContext, notify};

/// Where an update stands.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum UpdateState {
    /// In the run's inbox, not taken yet.
    Requested,
    /// Accepted: its handler runs.
    Accepted,
    /// Its handler returned.
    Finished(UpdateOutcome),
    /// Refused before anything was recorded.
    Refused(UpdateRefusal),
}

impl Store {
    /// Sends an update to a run, unless one with its id was sent before: then nothing is
    /// written and the caller waits for the first one's outcome. Returns whether it was sent.
    pub(crate) async fn request_update(
        &self,
        run_id: RunId,
        update: &UpdateAccepted,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let inserted = sqlx::query(
            "INSERT INTO reprise.updates (run_id, update_id, name) VALUES ($1, $2, $3)
             ON CONFLICT (run_id, update_id) DO NOTHING",
        )
        .bind(run_id.as_uuid())
        .bind(update.update_id.as_str())
        .bind(update.name.as_str())
        .execute(&mut *tx)
        .await
        .map_err(Error::from_db)?
        .rows_affected()
            == 1;
        if inserted {
            let input = EventKind::UpdateAccepted(update.clone());
            let key = format!("update:{}", update.update_id);
            deliver(
                &mut tx,
                self.write_context(),
                Delivery::once(run_id, &input, key),
            )
            .await?;
        }
        tx.commit().await.map_err(Error::from_db)?;
        Ok(inserted)
    }

    /// Where an update stands; `None` if it was never sent to this run.
    pub(crate) async fn update_state(
        &self,
        run_id: RunId,
        update_id: &str,
    ) -> Result<Option<UpdateState>> {
        let row = sqlx::query(
            "SELECT name, state, result, failure, refusal_kind, refusal_message, registered
               FROM reprise.updates WHERE run_id = $1 AND update_id = $2",
        )
        .bind(run_id.as_uuid())
        .bind(update_id)
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        let Some(row) = row else { return Ok(None) };
        let get = |column: &str| -> Result<Option<Vec<u8>>> {
            row.try_get(column).map_err(Error::from_db)
        };
        let state: String = row.try_get("state").map_err(Error::from_db)?;
        let corrupt = |reason: String| Error::Corrupt {
            what: format!("update {update_id:?} of run {run_id}"),
            reason,
        };
        Ok(Some(match state.as_str() {
            "requested" => UpdateState::Requested,
            "accepted" => UpdateState::Accepted,
            "completed" => match (get("result")?, get("failure")?) {
                (Some(result), None) => {
                    UpdateState::Finished(UpdateOutcome::Completed(Payload::from_bytes(result)?))
                }
                (None, Some(failure)) => {
                    UpdateState::Finished(UpdateOutcome::Failed(Failure::from_stored(&failure)?))
                }
                _ => {
                    return Err(corrupt(
                        "completed with neither a result nor a failure".into(),
                    ));
                }
            },
            "rejected" => {
                let name: String = row.try_get("name").map_err(Error::from_db)?;
                let kind: Option<String> = row.try_get("refusal_kind").map_err(Error::from_db)?;
                let message: Option<String> =
                    row.try_get("refusal_message").map_err(Error::from_db)?;
                let registered: Option<Vec<String>> =
                    row.try_get("registered").map_err(Error::from_db)?;
                let message = message.unwrap_or_default();
                UpdateState::Refused(match kind.as_deref() {
                    Some("unknown_update") => UpdateRefusal::UnknownUpdate {
                        name,
                        registered: registered.unwrap_or_default(),
                    },
                    Some("undecodable_input") => UpdateRefusal::UndecodableInput { name, message },
                    Some("rejected") => UpdateRefusal::Rejected {
                        name,
                        reason: message,
                    },
                    Some("panicked") => UpdateRefusal::Panicked { name, message },
                    other => return Err(corrupt(format!("unknown refusal kind {other:?}"))),
                })
            }
            other => return Err(corrupt(format!("unknown state {other:?}"))),
        }))
    }
}

/// How a refusal is stored: kind, message, the names registered.
fn refusal_columns(refusal: &UpdateRefusal) -> (&'static str, String, Vec<String>) {
    match refusal {
        UpdateRefusal::UnknownUpdate { registered, .. } => {
            ("unknown_update", refusal.to_string(), registered.clone())
        }
        UpdateRefusal::UndecodableInput { message, .. } => {
            ("undecodable_input", message.clone(), Vec::new())
        }
        UpdateRefusal::Rejected { reason, .. } => ("rejected", reason.clone(), Vec::new()),
        UpdateRefusal::Panicked { message, .. } => ("panicked", message.clone(), Vec::new()),
        // A refusal of a kind this build does not know reads back as a plain rejection.
        other => ("rejected", other.to_string(), Vec::new()),
    }
}

/// Writes what a step did to its run's updates (accepted, completed, refused) and tells their
/// callers, inside the step's transaction. Nothing when the step touched no update.
pub(crate) async fn record_update_effects(
    conn: &mut PgConnection,
    cx: WriteContext,
    run_id: RunId,
    effects: &Effects<'_>,
) -> Result<()> {
    for (seq, update_id) in &effects.accepted_updates {
        sqlx::query(
            "UPDATE reprise.updates SET state = 'accepted', accepted_seq = $3
              WHERE run_id = $1 AND update_id = $2 AND state = 'requested'",
        )
        .bind(run_id.as_uuid())
        .bind(update_id.as_str())
        .bind(seq_param(*seq))
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    }
    let finished = effects
        .completed_updates
        .iter()
        .map(|c| (&c.update_id, &c.outcome))
        .chain(
            effects
                .repeated_updates
                .iter()
                .map(|(id, outcome)| (id, outcome)),
        );
    for (update_id, outcome) in finished {
        let (result, failure) = match outcome {
            UpdateOutcome::Completed(result) => (Some(result.as_bytes().to_vec()), None),
            UpdateOutcome::Failed(failure) => (None, Some(failure.to_stored(&cx.limits)?)),
        };
        sqlx::query(
            "UPDATE reprise.updates
                SET state = 'completed', finished_at = reprise.db_now($1), result = $4, failure = $5
              WHERE run_id = $2 AND update_id = $3 AND state IN ('requested', 'accepted')",
        )
        .bind(cx.offset)
        .bind(run_id.as_uuid())
        .bind(update_id.as_str())
        .bind(result)
        .bind(failure)
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    }
    for rejected in &effects.rejected_updates {
        let (kind, message, registered) = refusal_columns(&rejected.refusal);
        sqlx::query(
            "UPDATE reprise.updates
                SET state = 'rejected', finished_at = reprise.db_now($1), refusal_kind = $4,
                    refusal_message = $5, registered = $6
              WHERE run_id = $2 AND update_id = $3 AND state = 'requested'",
        )
        .bind(cx.offset)
        .bind(run_id.as_uuid())
        .bind(rejected.update_id.as_str())
        .bind(kind)
        .bind(message)
        .bind(registered)
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    }
    if effects.touch_updates() {
        notify(conn, ANSWERS_CHANNEL, &run_id.to_string()).await?;
    }
    Ok(())
}
