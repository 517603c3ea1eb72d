//! Answering queries (see `store/queries.rs` for how they travel): from the orchestrator this
//! engine holds in its cache when it is at the run's head, else by replaying the run's
//! history (a run evicted, held by another engine, or closed).
//!
//! Every engine that runs the workflow's type may answer. The one holding the run in its
//! cache takes a query at once; the others wait [`EngineOptions::query_replay_delay`] first,
//! so that with several engines a cached run is usually answered without a replay.
//!
//! [`EngineOptions::query_replay_delay`]: super::EngineOptions::query_replay_delay

use std::sync::PoisonError;
use std::time::Duration;

use reprise_history::Payload;
use reprise_sdk::Execution;
use tokio::sync::{Notify, watch};

use super::Engine;
use crate::error::Result;
use crate::listen::wait;
use crate::store::{QueryRefusal, TakenQuery};

/// How often expired queries are looked for.
const EXPIRED_SWEEP: Duration = Duration::from_secs(60);

impl Engine {
    /// Answers queries until `stop`: woken by each query asked (`asked`), polling at the
    /// idle poll.
    pub(super) async fn answer_queries(
        &self,
        asked: &Notify,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut swept = tokio::time::Instant::now();
        while !*stop.borrow() {
            let next = match self.answer_waiting().await {
                Ok(next) => next.unwrap_or(self.options.idle_poll),
                Err(e) => {
                    tracing::warn!(error = %e, "answering queries failed; trying again");
                    self.options.idle_poll
                }
            };
            if swept.elapsed() >= EXPIRED_SWEEP {
                swept = tokio::time::Instant::now();
                if let Err(e) = self.store.drop_expired_queries().await {
                    tracing::debug!(error = %e, "deleting expired queries failed");
                }
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = wait(asked, next.min(self.options.idle_poll)) => {}
            }
        }
        Ok(())
    }

    /// Answers the waiting queries this engine should answer now; returns when to look again
    /// for those it let wait (for the engine that caches their run).
    async fn answer_waiting(&self) -> Result<Option<Duration>> {
        let waiting = self.store.waiting_queries(&self.known_types).await?;
        let delay = self.options.query_replay_delay;
        let mut next: Option<Duration> = None;
        let mut now = Vec::new();
        for query in waiting {
            if self.is_cached(query.run_id) || query.age >= delay {
                now.push(query.query_id);
            } else {
                let left = delay - query.age;
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }
        // Each on its own: one that fails leaves the others answered.
        futures::future::join_all(now.into_iter().map(|id| self.answer_one(id))).await;
        Ok(next)
    }

    /// Takes one query (unless another engine did) and answers it. A query taken and not
    /// answered (the database went away meanwhile) is handed back for any engine to take.
    async fn answer_one(&self, query_id: uuid::Uuid) {
        let query = match self.store.take_query(query_id).await {
            Ok(Some(query)) => query,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "taking a query failed");
                return;
            }
        };
        let answer = match self.answer_cached(&query) {
            Some(answer) => answer.map_err(QueryRefusal::from),
            None => self.answer_replayed(&query).await,
        };
        if let Err(e) = self.store.answer_query(query_id, &answer).await {
            tracing::warn!(error = %e, "answering a query failed; handing it back");
            if let Err(e) = self.store.hand_back_query(query_id).await {
                tracing::warn!(error = %e, "handing a query back failed; its asker times out");
            }
        }
    }

    /// The answer of the cached orchestrator, if this engine holds the run at its head.
    /// Answered under the cache's lock: no step can take the orchestrator meanwhile, so the
    /// answer reads the state of a written step.
    fn answer_cached(
        &self,
        query: &TakenQuery,
    ) -> Option<std::result::Result<Payload, reprise_sdk::QueryError>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = cache.peek(&query.run_id)?;
        if cached.execution.last_seq() != query.head_seq {
            return None;
        }
        self.store.metrics().query_answered(true);
        Some(cached.execution.query(&query.name, &query.input))
    }

    /// The answer of the run rebuilt from its history.
    async fn answer_replayed(
        &self,
        query: &TakenQuery,
    ) -> std::result::Result<Payload, QueryRefusal> {
        let unreplayable = |message: String| QueryRefusal::Unreplayable { message };
        let history = self
            .store
            .history(query.run_id)
            .await
            .map_err(|e| unreplayable(e.to_string()))?;
        self.store.metrics().query_answered(false);
        self.store.metrics().replayed(history.len());
        let execution =
            Execution::replay_with(&self.registry, &history, self.options.input_changes)
                .map_err(|e| unreplayable(e.to_string()))?;
        Ok(execution.query(&query.name, &query.input)?)
    }
}
