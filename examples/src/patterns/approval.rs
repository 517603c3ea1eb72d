//! **Approval.** An expense waits for its approver to `approve` or `reject` it. After three
//! days without an answer it escalates to the approver's manager; three more days, and it is
//! rejected as expired. Waiting costs nothing: no process holds the run while it waits, and a
//! deploy or a crash in those days changes nothing.
//!
//! Run it: `cargo run -p reprise-examples -- approval`. The guide: `docs/patterns/approval.md`.

use std::time::Duration;

use futures::FutureExt as _;
use reprise_sdk::{ActivityContext, ActivityDef, ActivityError, RegistryBuilder, SignalDef};
use reprise_sdk::{WorkflowContext, WorkflowDef, WorkflowError, select};
use serde::{Deserialize, Serialize};

/// An expense from submission to payment (or rejection).
pub const EXPENSE: WorkflowDef<Expense, Decision> = WorkflowDef::new("expense");
/// The approver says yes.
pub const APPROVE: SignalDef<Approval> = SignalDef::new("approve");
/// The approver says no.
pub const REJECT: SignalDef<Rejection> = SignalDef::new("reject");
/// Tells someone an expense waits for them (an e-mail, a chat message).
pub const NOTIFY: ActivityDef<Notice, ()> = ActivityDef::new("notify-approver");
/// Pays an approved expense; returns the payment's reference.
pub const PAY: ActivityDef<Expense, String> = ActivityDef::new("pay-expense");

/// How long an approver has before the expense goes to their manager.
pub const ESCALATE_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);

/// A submitted expense.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Expense {
    /// Who spent the money.
    pub employee: String,
    /// How much, in cents.
    pub amount_cents: u64,
    /// What for.
    pub description: String,
    /// Who approves it.
    pub approver: String,
    /// Who decides when the approver does not.
    pub manager: String,
    /// How long each of them has, in seconds ([`ESCALATE_AFTER`] unless a test or demo
    /// wants it shorter).
    pub answer_within_secs: u64,
}

/// The payload of `approve`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: String,
}

/// The payload of `reject`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rejection {
    /// Who rejected.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// A message to a person.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notice {
    /// To whom.
    pub to: String,
    /// What.
    pub text: String,
}

/// How an expense ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Approved and paid.
    Paid {
        /// Who approved.
        approved_by: String,
        /// The payment's reference.
        payment: String,
    },
    /// Rejected (or expired: `by` is `nobody`).
    Rejected {
        /// Who rejected.
        by: String,
        /// Why.
        reason: String,
    },
}

async fn expense(ctx: WorkflowContext, expense: Expense) -> Result<Decision, WorkflowError> {
    let within = Duration::from_secs(expense.answer_within_secs);
    let mut decision = None;
    for who in [&expense.approver, &expense.manager] {
        let text = format!(
            "{} asks for {:.2} ({}): approve or reject {}",
            expense.employee,
            expense.amount_cents as f64 / 100.0,
            expense.description,
            ctx.workflow_id()
        );
        ctx.activity(
            NOTIFY,
            &Notice {
                to: who.clone(),
                text,
            },
        )
        .await?;
        // Shown by `reprise describe`, the UI and `Client::describe`: who holds it up.
        ctx.set_status(&format!("waiting for {who}"))?;
        decision = wait_for_decision(&ctx, within).await?;
        if decision.is_some() {
            break;
        }
    }
    let decision = decision.unwrap_or(Err(Rejection {
        by: "nobody".to_string(),
        reason: format!(
            "no answer within {} s from anyone",
            within.as_secs().saturating_mul(2)
        ),
    }));
    match decision {
        Ok(approval) => {
            ctx.set_status("paying")?;
            let payment = ctx.activity(PAY, &expense).await?;
            Ok(Decision::Paid {
                approved_by: approval.by,
                payment,
            })
        }
        Err(rejection) => Ok(Decision::Rejected {
            by: rejection.by,
            reason: rejection.reason,
        }),
    }
}

/// The first of `approve`, `reject` or the deadline. A durable timer: the deadline holds
/// across restarts, and the signals that lose stay buffered for a later wait.
async fn wait_for_decision(
    ctx: &WorkflowContext,
    within: Duration,
) -> Result<Option<Result<Approval, Rejection>>, WorkflowError> {
    select! {
        approval = ctx.signal(APPROVE).fuse() => Ok(Some(Ok(approval?))),
        rejection = ctx.signal(REJECT).fuse() => Ok(Some(Err(rejection?))),
        slept = ctx.sleep(within).fuse() => { slept?; Ok(None) },
    }
}

async fn notify(_: ActivityContext, notice: Notice) -> Result<(), ActivityError> {
    // A real application sends an e-mail or a chat message here.
    tracing::info!(to = %notice.to, text = %notice.text, "notified");
    Ok(())
}

async fn pay(ctx: ActivityContext, expense: Expense) -> Result<String, ActivityError> {
    // The idempotency key is the same on every attempt: the bank pays it once.
    Ok(format!(
        "paid {} cents to {} ({})",
        expense.amount_cents,
        expense.employee,
        ctx.idempotency_key()
    ))
}

/// Registers the expense workflow and its activities.
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(EXPENSE, expense)
        .activity(NOTIFY, notify)
        .activity(PAY, pay)
}

// ---- The demo: what `cargo run -p reprise-examples -- approval` does. ----

/// Three expenses: approved, rejected, and one nobody answers in time that escalates.
pub async fn demo(demo: &super::demo::Demo) -> anyhow::Result<Vec<Decision>> {
    let client = demo.client();
    let suffix = super::demo::unique_suffix();
    let submit = |what: &str, cents: u64, within: u64| Expense {
        employee: "Ada".to_string(),
        amount_cents: cents,
        description: what.to_string(),
        approver: "alice".to_string(),
        manager: "bob".to_string(),
        answer_within_secs: within,
    };
    let days = ESCALATE_AFTER.as_secs();
    let mut decisions = Vec::new();

    let taxi = format!("expense-taxi-{suffix}");
    let handle = client
        .start(EXPENSE, &taxi, &submit("taxi", 4_250, days))
        .await?;
    wait_for_status(client, &taxi).await?;
    println!("{taxi} waits for alice; she approves it from a shell:");
    println!("  reprise signal {taxi} approve --payload '{{\"by\":\"alice\"}}'");
    let approval = Approval {
        by: "alice".to_string(),
    };
    client.signal(&taxi, APPROVE, &approval).await?;
    decisions.push(handle.result().await?);
    println!("  → {:?}", decisions[0]);

    let yacht = format!("expense-yacht-{suffix}");
    let handle = client
        .start(EXPENSE, &yacht, &submit("yacht rental", 1_200_000, days))
        .await?;
    wait_for_status(client, &yacht).await?;
    println!("{yacht} waits for alice; she rejects it:");
    println!(
        "  reprise signal {yacht} reject --payload '{{\"by\":\"alice\",\"reason\":\"really?\"}}'"
    );
    let rejection = Rejection {
        by: "alice".to_string(),
        reason: "really?".to_string(),
    };
    client.signal(&yacht, REJECT, &rejection).await?;
    decisions.push(handle.result().await?);
    println!("  → {:?}", decisions[1]);

    let hotel = format!("expense-hotel-{suffix}");
    println!(
        "{hotel}: alice is on holiday. It escalates to bob after 3 days (here: 2 seconds, \
         to watch it happen; the test runs the real 3 days in virtual time)"
    );
    let handle = client
        .start(EXPENSE, &hotel, &submit("hotel", 38_000, 2))
        .await?;
    let status = wait_for_status_to(client, &hotel, "waiting for bob").await?;
    println!("  status: {status}");
    client
        .signal(
            &hotel,
            APPROVE,
            &Approval {
                by: "bob".to_string(),
            },
        )
        .await?;
    decisions.push(handle.result().await?);
    println!("  → {:?}", decisions[2]);
    Ok(decisions)
}

/// Waits until the run publishes its first status (it has notified the approver).
async fn wait_for_status(client: &reprise_engine::Client, id: &str) -> anyhow::Result<String> {
    wait_for_status_to(client, id, "waiting for").await
}

/// Waits until the run's status starts with `prefix`; returns it.
async fn wait_for_status_to(
    client: &reprise_engine::Client,
    id: &str,
    prefix: &str,
) -> anyhow::Result<String> {
    let what = format!("status {prefix:?}");
    super::demo::wait_for(client, id, &what, |described| {
        let Some((payload, _)) = &described.custom_status else {
            return Ok(None);
        };
        let status: String = client.converter().from_payload(payload)?;
        Ok(status.starts_with(prefix).then_some(status))
    })
    .await
}
