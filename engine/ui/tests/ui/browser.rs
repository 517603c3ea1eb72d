//! Click-throughs in headless Chromium: what an operator does, step by step. Each also writes
//! a screenshot of its page to `docs/screenshots/`, which the README shows.

use std::time::Duration;

use reprise_engine::RunFilter;
use reprise_history::RunState;
use reprise_ui::UiOptions;

use crate::support::{
    APPROVE, Approval, Chromium, ONE_BROWSER, Shop, parked_run, shifty_v2_line, within,
};

/// List → filter → open a run → its timeline and a decoded payload → a malformed signal is
/// refused beside its field → a signal → the page follows the run to its completion.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_a_run_signals_it_and_watches_it_complete() {
    let _turn = ONE_BROWSER.lock().await;
    let shop = Shop::start(UiOptions::default()).await;
    shop.order_waiting("order-1001", "teapot").await;
    shop.order_waiting("order-1002", "kettle").await;
    shop.order_waiting("invoice-7", "ledger").await;
    let chromium = Chromium::start().await;
    let b = &chromium.browser;

    b.goto(&shop.url("/runs")).await.unwrap();
    assert!(chromium.text("#runs").await.contains("order-1001"));
    chromium.screenshot("runs").await;

    // Filter by workflow id prefix: the invoice goes, both orders stay.
    chromium.fill("form.filters input[name=id]", "order-").await;
    chromium.click("form.filters button[type=submit]").await;
    let listed = chromium.text("#runs").await;
    assert!(
        listed.contains("order-1001") && listed.contains("order-1002"),
        "{listed}"
    );
    assert!(!listed.contains("invoice-7"), "{listed}");
    assert!(
        b.current_url()
            .await
            .unwrap()
            .as_str()
            .contains("id=order-")
    );

    // A filter that matches nothing says so.
    chromium
        .fill("form.filters input[name=id]", "nothing-like-this")
        .await;
    chromium.click("form.filters button[type=submit]").await;
    assert!(
        chromium
            .text("#no-runs")
            .await
            .contains("No runs match this filter")
    );

    // Open the teapot order: its timeline and its input, decoded.
    b.goto(&shop.url("/runs?id=order-1001")).await.unwrap();
    chromium.click("#runs tbody a").await;
    assert!(chromium.text("h1").await.contains("order-1001"));
    let bars = b
        .find_all(fantoccini::Locator::Css("#timeline .bar"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 1, "one activity (pack) so far");
    let input = chromium.text(".io pre.payload").await;
    assert!(input.contains("\"item\": \"teapot\""), "{input}");
    assert!(
        chromium
            .text("#custom-status")
            .await
            .contains("awaiting approval")
    );

    // Malformed JSON: the parser's message beside the field, nothing sent.
    chromium
        .fill("#signal-form input[name=name]", "approve")
        .await;
    chromium
        .fill("#signal-form textarea[name=payload]", "{\"by\": ")
        .await;
    chromium.click("#signal-form button").await;
    chromium.confirm().await;
    let error = chromium.text("#signal-form .field-error").await;
    assert!(
        error.contains("not JSON") && error.contains("line 1"),
        "{error}"
    );
    let history = shop.client().describe("order-1001").await.unwrap();
    assert_eq!(history.status, RunState::Running);
    let kept = b
        .find(fantoccini::Locator::Css("#signal-form textarea"))
        .await
        .unwrap();
    assert_eq!(
        kept.prop("value").await.unwrap().as_deref(),
        Some("{\"by\": "),
        "the text is kept to fix"
    );

    // The signal, confirmed: the page follows the run until it completes.
    chromium
        .fill("#signal-form textarea[name=payload]", "{\"by\": \"ada\"}")
        .await;
    chromium.click("#signal-form button").await;
    chromium.confirm().await;
    chromium.wait_for_text("h1", "completed").await;
    let result = chromium.text("#result").await;
    assert!(
        result.contains("shipped 2 × teapot, approved by ada"),
        "{result}"
    );
    let bars = b
        .find_all(fantoccini::Locator::Css("#timeline .bar.completed"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 2, "pack and ship, both completed");
    assert!(chromium.text("#events").await.contains("SignalReceived"));
    b.execute(
        "document.getElementById('timeline').scrollIntoView({block: 'center'})",
        Vec::new(),
    )
    .await
    .unwrap();
    chromium.screenshot("run-timeline").await;

    // The other order never got a signal.
    let other = shop.client().describe("order-1002").await.unwrap();
    assert_eq!(other.status, RunState::Running);
    chromium.stop().await;
    shop.stop().await;
}

/// A parked run's report shows both sides: the event history holds at the seq, and what
/// the code did there with its source line and the build that parked it.
#[tokio::test(flavor = "multi_thread")]
async fn a_parked_run_shows_history_and_code_side_by_side() {
    let _turn = ONE_BROWSER.lock().await;
    let shop = Shop::start(UiOptions::default()).await;
    parked_run(&shop, "shifty-1").await;
    let chromium = Chromium::start().await;
    chromium.browser.goto(&shop.url("/parked")).await.unwrap();
    let listed = chromium.text("#parked").await;
    assert!(
        listed.contains("shifty-1") && listed.contains("ND01"),
        "{listed}"
    );
    chromium.click("#parked tbody a").await;
    let report = chromium.text("#parked-report").await;
    assert!(
        report.contains("nondeterminism ND01 at event 2"),
        "{report}"
    );
    let held = chromium.text("#parked-report .side.history").await;
    assert!(
        held.contains("ActivityScheduled") && held.contains("prepare"),
        "{held}"
    );
    let did = chromium.text("#parked-report .side.code").await;
    assert!(did.contains("TimerStarted"), "{did}");
    assert!(
        did.contains(&format!("support.rs:{}", shifty_v2_line())),
        "{did}"
    );
    assert!(report.contains("Parked by build v2"), "{report}");
    chromium.screenshot("parked-report").await;
    chromium.stop().await;
    shop.stop().await;
}

/// A bulk cancel over a filter: the count first, then progress to the end; only the runs the
/// filter matches are cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_cancel_over_a_filter_counts_first_then_cancels_what_matches() {
    let _turn = ONE_BROWSER.lock().await;
    let shop = Shop::start(UiOptions::default()).await;
    for i in 0..6 {
        shop.order_waiting(&format!("bulk-{i}"), "cup").await;
    }
    shop.order_waiting("keep-1", "saucer").await;
    let chromium = Chromium::start().await;
    chromium
        .browser
        .goto(&shop.url("/runs?id=bulk-"))
        .await
        .unwrap();
    chromium.click("details.bulk summary").await;
    chromium
        .fill("#bulk-form input[name=reason]", "closing the cup line")
        .await;
    chromium.click("#bulk-form button").await;
    assert_eq!(chromium.text("#batch-count").await, "6");
    chromium.click("#start-batch").await;
    chromium.wait_for_text("#batch", "finished").await;
    assert!(
        chromium
            .text("#batch-progress")
            .await
            .contains("6 of 6 handled: 6 done")
    );
    within(Duration::from_secs(20), async {
        loop {
            let filter = RunFilter {
                workflow_id_prefix: Some("bulk-".to_string()),
                status: Some(RunState::Cancelled),
                ..RunFilter::default()
            };
            if shop.client().count_runs(&filter).await.unwrap() == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let kept = shop.client().describe("keep-1").await.unwrap();
    assert_eq!(kept.status, RunState::Running, "outside the filter");
    // Signal the one left, so it is not only the filter that kept it.
    shop.client()
        .signal("keep-1", APPROVE, &Approval { by: "bo".into() })
        .await
        .unwrap();
    chromium.stop().await;
    shop.stop().await;
}
