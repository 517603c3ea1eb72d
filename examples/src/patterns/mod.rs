//! The patterns people know from other workflow engines, as runnable programs: each module is
//! one pattern's workflow and activities (what to copy), then its demo (what
//! `cargo run -p reprise-examples -- <name>` prints). `docs/patterns/` has a guide per pattern.

pub mod approval;
pub mod batch;
pub mod caching;
pub mod dead_letters;
pub mod demo;
pub mod media;
pub mod nightly_report;
pub mod saga;

use reprise_sdk::Registry;

/// Which build of the examples' code a process runs: v2 is the current one; v1 is the build
/// before the invoice parser's fix (the dead-letter example deploys v2 over it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Build {
    /// The invoice parser cannot read `1.234,50`.
    V1,
    /// The current code.
    #[default]
    V2,
}

impl Build {
    /// Its name on the command line: `v1`, `v2`.
    pub fn name(self) -> &'static str {
        match self {
            Build::V1 => "v1",
            Build::V2 => "v2",
        }
    }

    /// The engine's build id (`EngineOptions::build`): a run parked by one build is taken
    /// back by an engine of another.
    pub fn id(self) -> &'static str {
        match self {
            Build::V1 => "reprise-example-v1",
            Build::V2 => "reprise-example-v2",
        }
    }
}

/// Every example workflow and activity, as `build` has them.
pub fn registry(build: Build) -> Result<Registry, reprise_sdk::Error> {
    let builder = crate::workflows::register(Registry::builder());
    let builder = approval::register(saga::register(batch::register(builder)));
    let builder = nightly_report::register(media::register(builder));
    let builder = caching::register(builder);
    let builder = match build {
        Build::V1 => dead_letters::register_v1(builder),
        Build::V2 => dead_letters::register(builder),
    };
    builder.build()
}
