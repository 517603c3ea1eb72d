//! Versioning a workflow with patch markers: the `ship-order` workflow in four versions, as
//! `docs/versioning.md` walks through them. Histories recorded from v1 and v2 runs on
//! PostgreSQL live in `examples/histories/versioning/` and are replayed by the tests.

use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, RegistryBuilder, WorkflowDef,
};

/// The workflow: pack an order, then send the parcel.
pub const SHIP: WorkflowDef<String, String> = WorkflowDef::new("ship-order");
/// Packs an order into a parcel.
pub const PACK: ActivityDef<String, String> = ActivityDef::new("pack");
/// Sends a parcel.
pub const SEND: ActivityDef<String, String> = ActivityDef::new("send");
/// Tells the customer the parcel is on its way (added in v2).
pub const NOTIFY: ActivityDef<String, ()> = ActivityDef::new("notify");

/// The activities every version uses.
fn activities() -> RegistryBuilder {
    Registry::builder()
        .activity(PACK, |_: ActivityContext, order: String| async move {
            Ok::<_, ActivityError>(format!("parcel({order})"))
        })
        .activity(SEND, |_: ActivityContext, parcel: String| async move {
            Ok::<_, ActivityError>(format!("sent {parcel}"))
        })
        .activity(NOTIFY, |_: ActivityContext, _parcel: String| async move {
            Ok::<_, ActivityError>(())
        })
}

/// v1: pack, then send.
pub mod v1 {
    use reprise_sdk::{Registry, WorkflowContext, WorkflowError};

    use super::{PACK, SEND, SHIP};

    /// The workflow.
    pub async fn ship(ctx: WorkflowContext, order: String) -> Result<String, WorkflowError> {
        let parcel = ctx.activity(PACK, &order).await?;
        Ok(ctx.activity(SEND, &parcel).await?)
    }

    /// v1's registry.
    pub fn registry() -> Result<Registry, reprise_sdk::Error> {
        super::activities().workflow(SHIP, ship).build()
    }
}

/// v2 done wrong: notifies the customer before sending, with no patch. Runs started on v1
/// that have packed but not yet sent would take a path their history does not have.
pub mod v2_unpatched {
    use reprise_sdk::{Registry, WorkflowContext, WorkflowError};

    use super::{NOTIFY, PACK, SEND, SHIP};

    /// The workflow.
    pub async fn ship(ctx: WorkflowContext, order: String) -> Result<String, WorkflowError> {
        let parcel = ctx.activity(PACK, &order).await?;
        ctx.activity(NOTIFY, &parcel).await?;
        Ok(ctx.activity(SEND, &parcel).await?)
    }

    /// This version's registry.
    pub fn registry() -> Result<Registry, reprise_sdk::Error> {
        super::activities().workflow(SHIP, ship).build()
    }
}

/// v2 done right: the new step behind `patched`, so v1 runs keep v1's path.
pub mod v2 {
    use reprise_sdk::{Registry, WorkflowContext, WorkflowError};

    use super::{NOTIFY, PACK, SEND, SHIP};

    /// The workflow.
    pub async fn ship(ctx: WorkflowContext, order: String) -> Result<String, WorkflowError> {
        let parcel = ctx.activity(PACK, &order).await?;
        if ctx.patched("notify-before-send") {
            ctx.activity(NOTIFY, &parcel).await?;
        }
        Ok(ctx.activity(SEND, &parcel).await?)
    }

    /// This version's registry.
    pub fn registry() -> Result<Registry, reprise_sdk::Error> {
        super::activities().workflow(SHIP, ship).build()
    }
}

/// v3, once no v1 run is open: the new step always runs; `deprecate_patch` accepts v2
/// histories (which recorded the marker) and new ones (which do not).
pub mod v3 {
    use reprise_sdk::{Registry, WorkflowContext, WorkflowError};

    use super::{NOTIFY, PACK, SEND, SHIP};

    /// The workflow.
    pub async fn ship(ctx: WorkflowContext, order: String) -> Result<String, WorkflowError> {
        let parcel = ctx.activity(PACK, &order).await?;
        ctx.deprecate_patch("notify-before-send");
        ctx.activity(NOTIFY, &parcel).await?;
        Ok(ctx.activity(SEND, &parcel).await?)
    }

    /// This version's registry.
    pub fn registry() -> Result<Registry, reprise_sdk::Error> {
        super::activities().workflow(SHIP, ship).build()
    }
}
