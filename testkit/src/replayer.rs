//! `Replayer`: replays recorded histories against the current code and reports every history
//! that no longer replays — the check to run before every deploy.

use std::fmt;
use std::path::{Path, PathBuf};

use reprise_history::{Limits, RecordedHistory};
use reprise_sdk::{Execution, InputChanges, Registry};

/// Why one history does not replay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayProblem {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a valid recorded history (decode, hash chain, validation).
    #[error(transparent)]
    History(#[from] reprise_history::Error),
    /// The code does not reproduce the history (nondeterminism, panic, unknown type).
    #[error(transparent)]
    Replay(#[from] reprise_sdk::Error),
}

/// One history that did not replay.
#[derive(Debug)]
pub struct Failure {
    /// Where it came from: a file path, or the name given to an in-memory history.
    pub name: String,
    /// Why.
    pub problem: ReplayProblem,
}

/// The histories that did not replay, each with its reason, out of how many were tried.
#[derive(Debug, thiserror::Error)]
pub struct ReplayFailures {
    /// How many histories were tried.
    pub tried: usize,
    /// The ones that failed, in the order tried.
    pub failures: Vec<Failure>,
}

impl fmt::Display for ReplayFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tried == 0 {
            return f.write_str(
                "no histories found to replay: a check that replays nothing proves nothing",
            );
        }
        writeln!(
            f,
            "{} of {} histories do not replay:",
            self.failures.len(),
            self.tried
        )?;
        for failure in &self.failures {
            writeln!(f, "  {}: {}", failure.name, failure.problem)?;
        }
        Ok(())
    }
}

/// What replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// The names of the histories that replayed, in the order tried.
    pub replayed: Vec<String>,
}

/// Replays recorded histories against a registry's workflow code.
///
/// By default a decision the code gives another input than history holds does not fail the
/// replay (an input may change between versions on purpose, and the recorded one is kept);
/// [`Replayer::strict`] fails it with ND08.
pub struct Replayer {
    registry: Registry,
    limits: Limits,
    input_changes: InputChanges,
}

impl Replayer {
    /// A replayer for the workflows in `registry`.
    pub fn new(registry: Registry) -> Replayer {
        let limits = registry.limits();
        Replayer {
            registry,
            limits,
            input_changes: InputChanges::Report,
        }
    }

    /// This replayer, failing a history whose code gives a recorded decision another input
    /// (ND08, at its seq, with the source line). Histories recorded before inputs were compared
    /// replay as before.
    pub fn strict(self) -> Replayer {
        Replayer {
            input_changes: InputChanges::Fail,
            ..self
        }
    }

    /// Replays one history.
    pub fn replay(&self, history: &RecordedHistory) -> Result<(), ReplayProblem> {
        Execution::replay_with(&self.registry, history.events(), self.input_changes)?;
        Ok(())
    }

    /// Reads and replays one file: `.json` is the JSON rendering, anything else the binary file.
    pub fn replay_file(&self, path: impl AsRef<Path>) -> Result<(), ReplayProblem> {
        let history = self.read(path.as_ref())?;
        self.replay(&history)
    }

    fn read(&self, path: &Path) -> Result<RecordedHistory, ReplayProblem> {
        let bytes = std::fs::read(path)?;
        let history = if path.extension().is_some_and(|e| e == "json") {
            let text = String::from_utf8(bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            RecordedHistory::from_json(&text, &self.limits)?
        } else {
            RecordedHistory::from_bytes(&bytes, &self.limits)?
        };
        Ok(history)
    }

    /// Replays every `.rhist` and `.json` file in a folder and its subfolders, in name order.
    /// Fails with every history that did not replay — or if the folder holds none.
    pub fn replay_dir(&self, dir: impl AsRef<Path>) -> Result<ReplayReport, ReplayFailures> {
        let mut files = Vec::new();
        if let Err(e) = collect(dir.as_ref(), &mut files) {
            return Err(ReplayFailures {
                tried: 1,
                failures: vec![Failure {
                    name: dir.as_ref().display().to_string(),
                    problem: ReplayProblem::Io(e),
                }],
            });
        }
        files.sort();
        self.replay_all(files.into_iter().map(|path| {
            let name = path.display().to_string();
            (name, self.read(&path))
        }))
    }

    /// Replays named in-memory histories; fails with every one that did not replay.
    pub fn replay_histories<'a>(
        &self,
        histories: impl IntoIterator<Item = (&'a str, &'a RecordedHistory)>,
    ) -> Result<ReplayReport, ReplayFailures> {
        self.replay_all(
            histories
                .into_iter()
                .map(|(name, h)| (name.to_string(), Ok(h.clone()))),
        )
    }

    fn replay_all(
        &self,
        histories: impl IntoIterator<Item = (String, Result<RecordedHistory, ReplayProblem>)>,
    ) -> Result<ReplayReport, ReplayFailures> {
        let mut report = ReplayReport {
            replayed: Vec::new(),
        };
        let mut failures = Vec::new();
        let mut tried = 0;
        for (name, history) in histories {
            tried += 1;
            match history.and_then(|h| self.replay(&h)) {
                Ok(()) => report.replayed.push(name),
                Err(problem) => failures.push(Failure { name, problem }),
            }
        }
        if failures.is_empty() && tried > 0 {
            Ok(report)
        } else {
            Err(ReplayFailures { tried, failures })
        }
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "rhist" || e == "json")
        {
            files.push(path);
        }
    }
    Ok(())
}
