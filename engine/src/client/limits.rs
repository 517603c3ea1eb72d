//! The client's flow-control operations: fleet-wide limits on activity attempts.

use crate::client::Client;
use crate::error::Result;
use crate::flow_control::{Limit, LimitScope, LimitUsage};
use crate::store::{on_live_connection, on_live_read};

impl Client {
    /// Sets the limit of a task queue or an activity type, held by every worker from their
    /// next claim: at most `max_concurrent` attempts running at once, at most `rate` started
    /// per second. Refused with [`crate::Error::InvalidArgument`] for a limit that limits
    /// nothing, a zero, a rate with no burst, or a scope no worker serves and no task has.
    pub async fn set_limit(&self, scope: LimitScope, limit: Limit) -> Result<()> {
        on_live_connection!(self.store, self.store.set_limit(&scope, &limit))
    }

    /// Removes the limit of a task queue or an activity type; false if it had none.
    pub async fn clear_limit(&self, scope: &LimitScope) -> Result<bool> {
        on_live_connection!(self.store, self.store.clear_limit(scope))
    }

    /// Every limit, with the attempts of its scope running and waiting now and the tokens its
    /// bucket holds.
    pub async fn limits(&self) -> Result<Vec<LimitUsage>> {
        on_live_read!(self.store, self.store.task_limits())
    }
}
