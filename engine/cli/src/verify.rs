//! `reprise verify`: every link of runs' history chains (keyed links with the chain key) and
//! their recorded heads; exits non-zero when one is broken.

use reprise_engine::{ChainVerdict, Client, RunVerification};

/// Runs verified per page of `--all`.
const PAGE: i64 = 500;

/// What the runs verified came to.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) keyed: u64,
    pub(crate) unkeyed: u64,
    pub(crate) broken: u64,
}

impl Tally {
    fn count(&mut self, verified: &RunVerification, quiet: bool) {
        let line = match &verified.verdict {
            ChainVerdict::Keyed { from } => {
                self.keyed += 1;
                format!("ok       keyed from seq {from}")
            }
            ChainVerdict::Unkeyed => {
                self.unkeyed += 1;
                "ok       not keyed".to_string()
            }
            ChainVerdict::Broken { seq, reason } => {
                self.broken += 1;
                format!("BROKEN   at seq {seq}: {reason}")
            }
        };
        let broken = matches!(verified.verdict, ChainVerdict::Broken { .. });
        if broken || !quiet {
            println!(
                "{} {} ({} events): {line}",
                verified.workflow_id, verified.run_id, verified.events
            );
        }
    }
}

/// Verifies the runs of `workflow_id`, or every run with `all`; prints one line per run (only
/// broken ones with `all`) and a summary. Returns the tally.
pub(crate) async fn run(
    client: &Client,
    workflow_id: Option<&str>,
    all: bool,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    match (workflow_id, all) {
        (Some(id), false) => {
            for verified in client.verify(id).await? {
                tally.count(&verified, false);
            }
        }
        (None, true) => {
            let mut after = None;
            loop {
                let page = client.verify_page(after, PAGE).await?;
                for verified in &page {
                    tally.count(verified, true);
                }
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => after = Some(last.run_id),
                    _ => break,
                }
            }
        }
        _ => anyhow::bail!("name one workflow id, or pass --all"),
    }
    println!(
        "{} runs: {} keyed, {} not keyed, {} broken",
        tally.keyed + tally.unkeyed + tally.broken,
        tally.keyed,
        tally.unkeyed,
        tally.broken
    );
    Ok(tally)
}
