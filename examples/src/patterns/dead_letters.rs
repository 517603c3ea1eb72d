//! **A failing flow and the dead-letter view.** Invoices are imported: parsed, then booked.
//! Build v1 of the parser cannot read European amounts (`1.234,50`); every attempt fails, and
//! after three the run fails. Nothing is lost: the failed run keeps its input and its
//! history. The operator finds it (`reprise list --status failed`), reads why (`reprise
//! describe`), deploys build v2 with the fix, and resets the run to the parse's scheduling:
//! a new run keeps the history up to there, runs the parse again and books the invoice.
//!
//! Run it: `cargo run -p reprise-examples -- dead-letters`. The guide:
//! `docs/patterns/dead-letters.md`.

use std::time::Duration;

use reprise_history::{ActivityOptions, RetryPolicy};
use reprise_sdk::{ActivityContext, ActivityDef, ActivityError, RegistryBuilder};
use reprise_sdk::{WorkflowContext, WorkflowDef, WorkflowError};
use serde::{Deserialize, Serialize};

/// Imports one invoice file: parse, then book.
pub const IMPORT_INVOICE: WorkflowDef<String, String> = WorkflowDef::new("import-invoice");
/// Reads `customer;amount currency`.
pub const PARSE_INVOICE: ActivityDef<String, Invoice> = ActivityDef::new("parse-invoice");
/// Books a parsed invoice in the ledger; returns the ledger entry.
pub const BOOK_INVOICE: ActivityDef<Invoice, String> = ActivityDef::new("book-invoice");

/// A parsed invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// Who pays.
    pub customer: String,
    /// How much, in cents.
    pub cents: u64,
    /// ISO 4217 code.
    pub currency: String,
}

async fn import_invoice(ctx: WorkflowContext, file: String) -> Result<String, WorkflowError> {
    // Three quick attempts: a parse that fails three times will fail a fourth. The run then
    // fails, and waits in the dead-letter view with its input for someone to look.
    let options = ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(3),
            initial_backoff: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    };
    let invoice = ctx.activity(PARSE_INVOICE, &file).options(options).await?;
    Ok(ctx.activity(BOOK_INVOICE, &invoice).await?)
}

/// Splits `customer;amount currency`.
fn fields(file: &str) -> Result<(&str, &str, &str), ActivityError> {
    let malformed = || ActivityError::non_retryable("Malformed", format!("not an invoice: {file}"));
    let (customer, rest) = file.split_once(';').ok_or_else(malformed)?;
    let (amount, currency) = rest.trim().split_once(' ').ok_or_else(malformed)?;
    Ok((customer.trim(), amount, currency.trim()))
}

/// `1234.50` as cents: digits, a point, two digits. Money is never a float.
fn cents_of(amount: &str) -> Option<u64> {
    let (units, fraction) = amount.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || fraction.len() != 2 || !digits(fraction) {
        return None;
    }
    let units: u64 = units.parse().ok()?;
    units.checked_mul(100)?.checked_add(fraction.parse().ok()?)
}

/// Build v1's parser: `1234.50` only. The bug: it fails on `1.234,50`, and retrying does not
/// help (retryable all the same, as a bug in a parser usually looks from outside).
async fn parse_invoice_v1(_: ActivityContext, file: String) -> Result<Invoice, ActivityError> {
    let (customer, amount, currency) = fields(&file)?;
    let cents = cents_of(amount)
        .ok_or_else(|| ActivityError::retryable("UnparseableAmount", format!("{amount:?}")))?;
    Ok(Invoice {
        customer: customer.to_string(),
        cents,
        currency: currency.to_string(),
    })
}

/// Build v2's parser: also European amounts, `1.234,50`.
async fn parse_invoice(_: ActivityContext, file: String) -> Result<Invoice, ActivityError> {
    let (customer, amount, currency) = fields(&file)?;
    let normalised = match amount.rfind(',') {
        Some(comma) if comma + 3 == amount.len() => amount.replace('.', "").replace(',', "."),
        _ => amount.to_string(),
    };
    let cents = cents_of(&normalised)
        .ok_or_else(|| ActivityError::non_retryable("UnparseableAmount", format!("{amount:?}")))?;
    Ok(Invoice {
        customer: customer.to_string(),
        cents,
        currency: currency.to_string(),
    })
}

async fn book_invoice(ctx: ActivityContext, invoice: Invoice) -> Result<String, ActivityError> {
    Ok(format!(
        "ledger entry {}: {} owes {}.{:02} {}",
        ctx.idempotency_key(),
        invoice.customer,
        invoice.cents / 100,
        invoice.cents % 100,
        invoice.currency
    ))
}

/// Registers the import as build v1 has it: the parser with the bug.
pub fn register_v1(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(IMPORT_INVOICE, import_invoice)
        .activity(PARSE_INVOICE, parse_invoice_v1)
        .activity(BOOK_INVOICE, book_invoice)
}

/// Registers the import as build v2 has it: the parser fixed.
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(IMPORT_INVOICE, import_invoice)
        .activity(PARSE_INVOICE, parse_invoice)
        .activity(BOOK_INVOICE, book_invoice)
}

// ---- The demo: what `cargo run -p reprise-examples -- dead-letters` does. ----

/// What the demo saw.
#[derive(Debug)]
pub struct DeadLetterOutcome {
    /// The run that failed on build v1.
    pub failed_run: reprise_history::RunId,
    /// Its failure, as `describe` shows it.
    pub failure: String,
    /// The run the reset started, on build v2.
    pub reset_run: reprise_history::RunId,
    /// What it returned.
    pub booked: String,
    /// The invoices build v1 imported without trouble.
    pub imported_by_v1: Vec<String>,
}

/// Imports three invoices on build v1 (one fails), then fixes it by deploying v2 and resetting.
pub async fn demo(demo: &mut super::demo::Demo) -> anyhow::Result<DeadLetterOutcome> {
    use reprise_engine::{RunFilter, history::RunState};
    if demo.build() != super::Build::V1 {
        demo.deploy(super::Build::V1).await?;
    }
    println!("running build v1 (its invoice parser cannot read 1.234,50)");
    let suffix = super::demo::unique_suffix();
    let files = [
        ("acme", "ACME Corp; 980.00 USD"),
        ("globex", "Globex; 1.234,50 EUR"),
        ("initech", "Initech; 45.10 USD"),
    ];
    let client = demo.client().clone();
    let mut handles = Vec::new();
    for (name, text) in files {
        let id = format!("invoice-{name}-{suffix}");
        handles.push((
            id.clone(),
            client.start(IMPORT_INVOICE, &id, &text.to_string()).await?,
        ));
    }
    let mut imported_by_v1 = Vec::new();
    for (id, handle) in &handles {
        match handle.result().await {
            Ok(entry) => {
                println!("  {id}: {entry}");
                imported_by_v1.push(entry);
            }
            Err(e) => println!("  {id}: FAILED ({e})"),
        }
    }

    println!("\nthe dead-letter view: reprise list --status failed --type import-invoice");
    let filter = RunFilter {
        status: Some(RunState::Failed),
        workflow_type: Some(reprise_history::WorkflowType::new(IMPORT_INVOICE.name())?),
        ..RunFilter::default()
    };
    let failed = client.list(&filter, None, 20).await?.runs;
    for run in &failed {
        println!("  {}  {}  {}", run.workflow_id, run.status, run.run_id);
    }
    let globex = format!("invoice-globex-{suffix}");
    let described = client.describe(&globex).await?;
    let failure = match &described.outcome {
        Some(reprise_engine::RunOutcome::Failed { failure }) => failure.to_string(),
        other => format!("not failed: {other:?}"),
    };
    println!("\nwhy: reprise describe {globex}\n  {failure}");

    println!("\ndeploying build v2 (the parser fixed)");
    demo.deploy(super::Build::V2).await?;
    let client = demo.client().clone();
    // Back to just after the parse was scheduled: the new run keeps the history up to there
    // (the input, the decision to parse) and runs the parse again, with the fixed code.
    let history = client.export(described.run_id).await?;
    let seq = history
        .events()
        .iter()
        .find_map(|event| match &event.kind {
            reprise_history::EventKind::ActivityFailed(failed) => Some(failed.scheduled),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("{globex} has no failed activity to reset before"))?;
    println!("resetting: reprise reset {globex} --seq {seq}");
    let reset_run = client.reset(&globex, seq.get()).await?;
    let booked = client
        .handle(IMPORT_INVOICE, &globex)
        .await?
        .result()
        .await?;
    println!("  {globex} (run {reset_run}): {booked}");
    println!(
        "  the failed run {} keeps its history: reprise history {globex} shows the new run, \
         the UI links both",
        described.run_id
    );
    Ok(DeadLetterOutcome {
        failed_run: described.run_id,
        failure,
        reset_run,
        booked,
        imported_by_v1,
    })
}
