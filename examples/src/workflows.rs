//! The example workflows and activities, and the registry that holds them.

use std::time::Duration;

use reprise_history::{ActivityOptions, RetryPolicy};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, LocalActivityOptions, QueryDef, Registry,
    RegistryBuilder, UpdateDef, WorkflowContext, WorkflowDef, WorkflowError, WorkflowState,
};

/// The quickstart: compose a greeting, wait a (durable) second, then shout it.
pub const GREETING: WorkflowDef<String, String> = WorkflowDef::new("greeting");
/// Builds a greeting.
pub const COMPOSE: ActivityDef<String, String> = ActivityDef::new("compose");
/// Upper-cases text (a blocking activity: it runs on the worker's thread pool).
pub const SHOUT: ActivityDef<String, String> = ActivityDef::new("shout");

async fn greeting(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let text = ctx.activity(COMPOSE, &name).await?;
    ctx.sleep(Duration::from_secs(1)).await?;
    Ok(ctx.activity(SHOUT, &text).await?)
}

async fn compose(_: ActivityContext, name: String) -> Result<String, ActivityError> {
    Ok(format!("hello, {name}"))
}

fn shout(_: ActivityContext, text: String) -> Result<String, ActivityError> {
    Ok(text.to_uppercase())
}

/// Sleeps for the given number of seconds, then answers: survives engines coming and going.
pub const SLEEPY: WorkflowDef<u64, String> = WorkflowDef::new("sleepy");

async fn sleepy(ctx: WorkflowContext, secs: u64) -> Result<String, WorkflowError> {
    ctx.sleep(Duration::from_secs(secs)).await?;
    Ok(format!("woke after {secs}s"))
}

/// A report a schedule starts (`reprise schedule create nightly --type report ...`): names
/// itself by its workflow id, which a schedule derives from the time it fired for.
pub const REPORT: WorkflowDef<String, String> = WorkflowDef::new("report");

async fn report(ctx: WorkflowContext, title: String) -> Result<String, WorkflowError> {
    Ok(format!("{title} ({})", ctx.workflow_id()))
}

/// Calls a service that hangs on its first attempt (a worker that dies mid-call, say).
pub const PATIENT: WorkflowDef<(), String> = WorkflowDef::new("patient");
/// Hangs for an hour on attempt 1; answers at once on later attempts.
pub const HANGS_ONCE: ActivityDef<(), String> = ActivityDef::new("hangs-once");

/// Attempts of at most two seconds, retried at once: a worker that dies mid-attempt costs
/// two seconds, not a default lease.
fn two_second_attempts() -> ActivityOptions {
    ActivityOptions {
        start_to_close: Some(Duration::from_secs(2)),
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    }
}

async fn patient(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    let options = two_second_attempts();
    Ok(ctx.activity(HANGS_ONCE, &()).options(options).await?)
}

async fn hangs_once(ctx: ActivityContext, (): ()) -> Result<String, ActivityError> {
    if ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
    Ok(format!("answered on attempt {}", ctx.attempt()))
}

/// Runs `n` activities at once and adds up their results.
pub const FAN_OUT: WorkflowDef<u32, u32> = WorkflowDef::new("fan-out");
/// Takes 100 ms for even inputs and 3 s for odd ones, then returns its input.
pub const SLOW_STEP: ActivityDef<u32, u32> = ActivityDef::new("slow-step");

async fn fan_out(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let options = ActivityOptions {
        start_to_close: Some(Duration::from_secs(60)),
        ..ActivityOptions::default()
    };
    let steps = (0..n).map(|i| ctx.activity(SLOW_STEP, &i).options(options.clone()));
    let mut total = 0;
    for result in futures::future::join_all(steps).await {
        total += result?;
    }
    Ok(total)
}

async fn slow_step(_: ActivityContext, n: u32) -> Result<u32, ActivityError> {
    let millis = if n.is_multiple_of(2) { 100 } else { 3_000 };
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(n)
}

/// Processes items 0 to n - 1 in one long activity that checkpoints as it goes; returns the
/// items the attempt that finished processed.
pub const CHECKPOINTED: WorkflowDef<u32, Vec<u32>> = WorkflowDef::new("checkpointed");
/// Processes items from the last checkpoint on, heartbeating each one done; on its first
/// attempt it hangs after item 5 (a worker that dies mid-way, say).
pub const PROCESS_ITEMS: ActivityDef<u32, Vec<u32>> = ActivityDef::new("process-items");

async fn checkpointed(ctx: WorkflowContext, n: u32) -> Result<Vec<u32>, WorkflowError> {
    let options = two_second_attempts();
    Ok(ctx.activity(PROCESS_ITEMS, &n).options(options).await?)
}

async fn process_items(ctx: ActivityContext, n: u32) -> Result<Vec<u32>, ActivityError> {
    let done: Option<u32> = ctx.last_details()?;
    let mut processed = Vec::new();
    for item in done.map_or(0, |last| last + 1)..n {
        processed.push(item);
        ctx.heartbeat(&item)?;
        if ctx.attempt() == 1 && item == 5 {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
    }
    Ok(processed)
}

/// Appends a line to a file with a local activity (input: the file's path).
pub const LEDGER: WorkflowDef<String, String> = WorkflowDef::new("ledger");
/// Appends its idempotency key to the file; when it is the file's first line, then hangs for
/// an hour (an engine that dies mid-call, say).
pub const APPEND_LINE: ActivityDef<String, String> = ActivityDef::new("append-line");

async fn ledger(ctx: WorkflowContext, path: String) -> Result<String, WorkflowError> {
    let options = LocalActivityOptions {
        start_to_close: Duration::from_secs(3_600),
        ..LocalActivityOptions::default()
    };
    Ok(ctx
        .local_activity(APPEND_LINE, &path)
        .options(options)
        .await?)
}

async fn append_line(ctx: ActivityContext, path: String) -> Result<String, ActivityError> {
    use tokio::io::AsyncWriteExt;
    let io = |e: std::io::Error| ActivityError::retryable("Io", e.to_string());
    let before = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text.lines().count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(e)),
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .map_err(io)?;
    file.write_all(format!("{}\n", ctx.idempotency_key()).as_bytes())
        .await
        .map_err(io)?;
    file.flush().await.map_err(io)?;
    if before == 0 {
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
    Ok(format!("written {} times", before + 1))
}

/// A shopping cart a caller fills through updates: `add-item` prices the item (an activity)
/// and answers the cart's total; `checkout` closes the cart and answers the total, which is
/// then the workflow's result. The cart refuses an empty item name, and anything after
/// checkout. `cart-total` answers the total as a query.
pub const CART: WorkflowDef<(), u32> = WorkflowDef::new("cart");
/// Adds an item; answers the new total.
pub const ADD_ITEM: UpdateDef<String, u32> = UpdateDef::new("add-item");
/// Closes the cart; answers the total.
pub const CHECKOUT: UpdateDef<(), u32> = UpdateDef::new("checkout");
/// The cart's total so far.
pub const CART_TOTAL: QueryDef<(), u32> = QueryDef::new("cart-total");
/// An item's price in cents: its name's length times 100.
pub const PRICE_ITEM: ActivityDef<String, u32> = ActivityDef::new("price-item");

#[derive(Default)]
struct Cart {
    total: u32,
    checked_out: bool,
}

async fn cart(ctx: WorkflowContext, (): ()) -> Result<u32, WorkflowError> {
    let cart = WorkflowState::new(Cart::default());
    ctx.on_query(CART_TOTAL, &cart, |cart, ()| cart.total);
    ctx.validate_update(ADD_ITEM, &cart, |cart, item| {
        if item.is_empty() {
            Err("an item needs a name".to_string())
        } else if cart.checked_out {
            Err("the cart is checked out".to_string())
        } else {
            Ok(())
        }
    });
    let adding = cart.clone();
    ctx.on_update(ADD_ITEM, move |ctx, item: String| {
        let cart = adding.clone();
        async move {
            let price = ctx.activity(PRICE_ITEM, &item).await?;
            Ok(cart.update(|c| {
                c.total += price;
                c.total
            }))
        }
    });
    let closing = cart.clone();
    ctx.on_update(CHECKOUT, move |_, ()| {
        let cart = closing.clone();
        async move {
            Ok(cart.update(|c| {
                c.checked_out = true;
                c.total
            }))
        }
    });
    let done = cart.clone();
    ctx.wait_until(move || done.read(|c| c.checked_out)).await?;
    Ok(cart.read(|c| c.total))
}

async fn price_item(_: ActivityContext, item: String) -> Result<u32, ActivityError> {
    Ok(u32::try_from(item.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(100))
}

/// Every example of the current build: the workflows above and the patterns'
/// (`crate::patterns`).
pub fn registry() -> Result<Registry, reprise_sdk::Error> {
    crate::patterns::registry(crate::patterns::Build::default())
}

/// The workflows above and the benchmarks', without the patterns: what `reprise-bench`'s
/// hosts run, so that its figures do not move as examples are added (a process that knows
/// more types claims with longer lists of them).
pub fn registry_without_patterns() -> Result<Registry, reprise_sdk::Error> {
    register(Registry::builder()).build()
}

/// Registers the workflows and activities above (and the benchmarks').
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    crate::bench::register(builder)
        .workflow(GREETING, greeting)
        .workflow(SLEEPY, sleepy)
        .workflow(REPORT, report)
        .workflow(PATIENT, patient)
        .workflow(FAN_OUT, fan_out)
        .workflow(LEDGER, ledger)
        .workflow(CHECKPOINTED, checkpointed)
        .workflow(CART, cart)
        .activity(PRICE_ITEM, price_item)
        .activity(PROCESS_ITEMS, process_items)
        .activity(APPEND_LINE, append_line)
        .activity(SLOW_STEP, slow_step)
        .activity(COMPOSE, compose)
        .blocking_activity(SHOUT, shout)
        .activity(HANGS_ONCE, hangs_once)
}
