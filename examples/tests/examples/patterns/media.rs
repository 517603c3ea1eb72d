use reprise_engine::history::{EventKind, RunState};
use reprise_examples::patterns::media::{self, MediaJob};

use crate::support::TestDb;

/// The demo as `cargo run -p reprise-examples -- media` runs it: a media worker process is
/// SIGKILLed mid-transcode, and the next attempt resumes from the last checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_transcode_is_resumed_from_its_checkpoint() {
    let db = TestDb::migrated().await;
    let demo = super::demo_on(&db, false).await;
    let job = MediaJob {
        file: "holiday.mov".into(),
        segments: 20,
        millis_per_segment: 150,
    };
    let outcome = super::within(media::demo(&demo, job)).await.unwrap();
    let rendition = &outcome.package.rendition;
    assert!(
        outcome.killed_at_segment >= 8,
        "killed at {}",
        outcome.killed_at_segment
    );
    assert!(
        rendition.attempt >= 2,
        "the killed attempt did not finish it"
    );
    // Resumed from the checkpoint, not from zero: at least where the progress the demo read
    // before the kill was (checkpoints only grow; more may have been written before the kill).
    assert!(
        rendition.resumed_from >= outcome.killed_at_segment
            && rendition.resumed_from < rendition.segments,
        "resumed from {} after a kill at {}",
        rendition.resumed_from,
        outcome.killed_at_segment
    );
    assert_eq!(rendition.segments, 20);
    assert_eq!(outcome.package.tags.len(), 3);

    let client = demo.client();
    let described = client.describe_run(outcome.run_id).await.unwrap();
    assert_eq!(described.status, RunState::Completed);
    let (status, _) = described.custom_status.unwrap();
    let status: String = client.converter().from_payload(&status).unwrap();
    assert_eq!(status, "published");
    // Transcoding and tagging were scheduled in one step: they ran side by side.
    let history = client.export(outcome.run_id).await.unwrap();
    let scheduled: Vec<(u64, String)> = history
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityScheduled(s) => Some((e.seq.get(), s.activity_type.to_string())),
            _ => None,
        })
        .collect();
    let seq_of = |name: &str| scheduled.iter().find(|(_, n)| n == name).unwrap().0;
    assert_eq!(seq_of("ai-tagging"), seq_of("transcode") + 1);
    demo.stop().await.unwrap();
    db.drop_database().await;
}
