//! **Media pipeline.** A video is validated, checked for safety, then transcoded and tagged by
//! AI at the same time, then packaged. Transcoding is long: it heartbeats its progress, which
//! doubles as a checkpoint, so when its worker dies (SIGKILL, an OOM kill, a spot instance
//! taken back) the next attempt resumes from the last segment done instead of from zero. The
//! run publishes its stage as custom status; with the heartbeats, that is a live progress
//! dashboard in the web UI's run page, `reprise describe` and `Client::describe`.
//!
//! Run it: `cargo run -p reprise-examples -- media`. The guide:
//! `docs/patterns/long-activities.md`.

use std::time::Duration;

use reprise_history::{ActivityOptions, RetryPolicy, TaskQueue};
use reprise_sdk::{ActivityContext, ActivityDef, ActivityError, RegistryBuilder};
use reprise_sdk::{WorkflowContext, WorkflowDef, WorkflowError};
use serde::{Deserialize, Serialize};

/// Validate → safety check → transcode ‖ tag → package.
pub const MEDIA_PIPELINE: WorkflowDef<MediaJob, Package> = WorkflowDef::new("media-pipeline");
/// Reads the file's container: is it a video, how long.
pub const VALIDATE: ActivityDef<MediaJob, u32> = ActivityDef::new("validate-media");
/// Refuses content that may not be published.
pub const SAFETY_CHECK: ActivityDef<MediaJob, ()> = ActivityDef::new("safety-check");
/// Encodes the video segment by segment; heartbeats [`TranscodeProgress`].
pub const TRANSCODE: ActivityDef<MediaJob, Rendition> = ActivityDef::new("transcode");
/// Tags the video with a model; heartbeats its percentage.
pub const TAG: ActivityDef<MediaJob, Vec<String>> = ActivityDef::new("ai-tagging");
/// Writes the manifest that publishes rendition and tags.
pub const PACKAGE: ActivityDef<(Rendition, Vec<String>), Package> =
    ActivityDef::new("package-media");

/// The queue of the media workers: the machines with the encoders and the GPUs.
pub const MEDIA_QUEUE: &str = "media";

/// The slowest segment a demo may ask for, in milliseconds: twice it, plus the worker's
/// heartbeat interval (500 ms), stays under the 2 s heartbeat timeout.
pub const MAX_MILLIS_PER_SEGMENT: u64 = 600;

/// A video to publish.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MediaJob {
    /// The upload's name.
    pub file: String,
    /// How many segments it has (a segment is a few seconds of video).
    pub segments: u32,
    /// How long encoding one takes, in milliseconds (a demo's stand-in for the real work). At
    /// most [`MAX_MILLIS_PER_SEGMENT`]: tagging heartbeats every two segments' time, and the
    /// heartbeat timeout is 2 s.
    pub millis_per_segment: u64,
}

/// What transcoding heartbeats: its progress, and the checkpoint to resume from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TranscodeProgress {
    /// Segments encoded (and stored) so far.
    pub segments_done: u32,
    /// Segments in all.
    pub segments: u32,
}

/// The encoded video.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    /// Where it is stored.
    pub location: String,
    /// Segments encoded.
    pub segments: u32,
    /// The attempt that finished it.
    pub attempt: u32,
    /// The segment that attempt started from: above 0 when it resumed from a checkpoint.
    pub resumed_from: u32,
}

/// The published video.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The manifest's location.
    pub manifest: String,
    /// The rendition in it.
    pub rendition: Rendition,
    /// The tags.
    pub tags: Vec<String>,
}

async fn media_pipeline(ctx: WorkflowContext, job: MediaJob) -> Result<Package, WorkflowError> {
    ctx.set_status("validating")?;
    ctx.activity(VALIDATE, &job).await?;
    ctx.set_status("safety check")?;
    ctx.activity(SAFETY_CHECK, &job).await?;

    ctx.set_status("transcoding and tagging")?;
    let media = TaskQueue::new(MEDIA_QUEUE).map_err(|e| WorkflowError::from_error(&e))?;
    let transcode = ctx
        .activity(TRANSCODE, &job)
        .options(long_running())
        .task_queue(media.clone());
    let tag = ctx
        .activity(TAG, &job)
        .options(long_running())
        .task_queue(media);
    // Both run at once, on whichever media workers are free.
    let (rendition, tags) = futures::join!(transcode, tag);
    let (rendition, tags) = (rendition?, tags?);

    ctx.set_status("packaging")?;
    let package = ctx.activity(PACKAGE, &(rendition, tags)).await?;
    ctx.set_status("published")?;
    Ok(package)
}

/// A long activity: a heartbeat at least every 2 seconds, or the attempt is presumed dead
/// and retried elsewhere (2 s after a worker dies rather than a whole attempt's timeout).
fn long_running() -> ActivityOptions {
    ActivityOptions {
        start_to_close: Some(Duration::from_secs(3_600)),
        heartbeat_timeout: Some(Duration::from_secs(2)),
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    }
}

async fn validate(_: ActivityContext, job: MediaJob) -> Result<u32, ActivityError> {
    if job.segments == 0 {
        return Err(ActivityError::non_retryable(
            "NotAVideo",
            format!("{} has no video stream", job.file),
        ));
    }
    Ok(job.segments)
}

async fn safety_check(_: ActivityContext, job: MediaJob) -> Result<(), ActivityError> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    if job.file.contains("unsafe") {
        return Err(ActivityError::non_retryable(
            "Unpublishable",
            format!("{} failed the safety check", job.file),
        ));
    }
    Ok(())
}

async fn transcode(ctx: ActivityContext, job: MediaJob) -> Result<Rendition, ActivityError> {
    // Where an earlier attempt got to: its last heartbeat. Segments before it are stored. A
    // checkpoint this code cannot read (an older shape) means starting over, not failing:
    // every retry would read the same one.
    let checkpoint: Option<TranscodeProgress> = ctx.last_details().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "unreadable checkpoint; transcoding from the start");
        None
    });
    let resumed_from = checkpoint.map_or(0, |c| c.segments_done);
    for segment in resumed_from..job.segments {
        // A cancelled run stops here: the cancel arrives with the next heartbeat's answer.
        if ctx.is_cancelled() {
            return Err(ActivityError::non_retryable(
                "Cancelled",
                format!("stopped after {segment} segments"),
            ));
        }
        // Encoding and storing one segment.
        tokio::time::sleep(Duration::from_millis(job.millis_per_segment)).await;
        let progress = TranscodeProgress {
            segments_done: segment + 1,
            segments: job.segments,
        };
        ctx.heartbeat(&progress)
            .map_err(|e| ActivityError::retryable("Heartbeat", e.to_string()))?;
    }
    Ok(Rendition {
        location: format!("s3://renditions/{}/1080p", job.file),
        segments: job.segments,
        attempt: ctx.attempt(),
        resumed_from,
    })
}

async fn tag(ctx: ActivityContext, job: MediaJob) -> Result<Vec<String>, ActivityError> {
    // The model is called in ten batches; progress is a percentage. No checkpoint: a
    // retried attempt tags from the start, which costs little here.
    for percent in (10..=100).step_by(10) {
        if ctx.is_cancelled() {
            return Err(ActivityError::non_retryable("Cancelled", "tagging stopped"));
        }
        tokio::time::sleep(Duration::from_millis(
            job.millis_per_segment.saturating_mul(2),
        ))
        .await;
        ctx.heartbeat(&percent)
            .map_err(|e| ActivityError::retryable("Heartbeat", e.to_string()))?;
    }
    Ok(vec!["outdoors".into(), "bicycle".into(), "sunset".into()])
}

async fn package(
    _: ActivityContext,
    (rendition, tags): (Rendition, Vec<String>),
) -> Result<Package, ActivityError> {
    Ok(Package {
        manifest: format!("{}/manifest.m3u8", rendition.location),
        rendition,
        tags,
    })
}

/// Registers the pipeline and its activities (transcode and tagging run on [`MEDIA_QUEUE`]).
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(MEDIA_PIPELINE, media_pipeline)
        .activity(VALIDATE, validate)
        .activity(SAFETY_CHECK, safety_check)
        .activity(TRANSCODE, transcode)
        .activity(TAG, tag)
        .activity(PACKAGE, package)
}

// ---- The demo: what `cargo run -p reprise-examples -- media` does. ----

/// What the demo saw.
#[derive(Debug)]
pub struct MediaOutcome {
    /// The run.
    pub run_id: reprise_history::RunId,
    /// What it published.
    pub package: Package,
    /// Where transcoding was when its worker was killed.
    pub killed_at_segment: u32,
}

/// Runs a video through the pipeline on a media worker process, SIGKILLs that worker
/// mid-transcode, starts another, and prints the run's progress as it goes.
pub async fn demo(demo: &super::demo::Demo, job: MediaJob) -> anyhow::Result<MediaOutcome> {
    let client = demo.client();
    let id = format!("media-{}", super::demo::unique_suffix());
    let ui = demo.serve_ui().await?;
    let mut worker = Some(demo.spawn_worker(&[MEDIA_QUEUE])?);
    println!("started a media worker process (queue {MEDIA_QUEUE})");
    let handle = client.start(MEDIA_PIPELINE, &id, &job).await?;
    println!("{id}: live in the web UI at {ui}/runs/{}", handle.run_id());
    println!("  or: reprise describe {id}");
    let kill_at = job.segments / 5 * 2;
    let mut killed_at_segment = 0;
    let mut last = String::new();
    let package = loop {
        if let Some(package) =
            super::demo::result_within(&handle, Duration::from_millis(200)).await?
        {
            break package;
        }
        let dashboard = Dashboard::read(client, &id).await?;
        let line = dashboard.line();
        if line != last {
            println!("  {line}");
            last = line;
        }
        if killed_at_segment == 0 && dashboard.transcoded >= kill_at.max(1) {
            killed_at_segment = dashboard.transcoded;
            if let Some(doomed) = worker.take() {
                doomed.kill().await?;
            }
            println!(
                "  SIGKILL the media worker mid-transcode ({killed_at_segment} segments done)"
            );
            worker = Some(demo.spawn_worker(&[MEDIA_QUEUE])?);
            println!(
                "  started another media worker; the attempt is retried once its heartbeats stop"
            );
        }
    };
    if let Some(worker) = worker {
        worker.stop().await?;
    }
    let rendition = &package.rendition;
    println!(
        "published {}: transcoded by attempt {}, which resumed at segment {} of {}; tags {:?}",
        package.manifest,
        rendition.attempt,
        rendition.resumed_from,
        rendition.segments,
        package.tags
    );
    Ok(MediaOutcome {
        run_id: handle.run_id(),
        package,
        killed_at_segment,
    })
}

/// What the dashboard shows: the run's stage and its long activities' progress.
struct Dashboard {
    stage: String,
    transcoded: u32,
    segments: u32,
    transcode_attempt: u32,
    tagged: Option<u32>,
}

impl Dashboard {
    async fn read(client: &reprise_engine::Client, id: &str) -> anyhow::Result<Dashboard> {
        let described = client.describe(id).await?;
        let converter = client.converter();
        let mut dashboard = Dashboard {
            stage: match &described.custom_status {
                Some((status, _)) => converter.from_payload(status)?,
                None => "starting".to_string(),
            },
            transcoded: 0,
            segments: 0,
            transcode_attempt: 0,
            tagged: None,
        };
        for activity in &described.pending_activities {
            let Some(progress) = &activity.progress else {
                continue;
            };
            if activity.activity_type.as_str() == TRANSCODE.name() {
                let progress: TranscodeProgress = converter.from_payload(progress)?;
                dashboard.transcoded = progress.segments_done;
                dashboard.segments = progress.segments;
                dashboard.transcode_attempt = activity.attempt;
            } else if activity.activity_type.as_str() == TAG.name() {
                dashboard.tagged = Some(converter.from_payload(progress)?);
            }
        }
        Ok(dashboard)
    }

    fn line(&self) -> String {
        let mut line = format!("[{}]", self.stage);
        if self.segments > 0 {
            line += &format!(
                " transcode {}/{} (attempt {})",
                self.transcoded, self.segments, self.transcode_attempt
            );
        }
        if let Some(percent) = self.tagged {
            line += &format!(" · tagging {percent}%");
        }
        line
    }
}
