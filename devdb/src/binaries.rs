//! Finding the PostgreSQL server binaries on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The folder that holds `initdb`, `pg_ctl`, `postgres` and `psql`.
#[derive(Clone, Debug)]
pub struct PgBinaries {
    dir: PathBuf,
}

/// What to run to install PostgreSQL on this machine.
pub fn install_hint() -> String {
    if Path::new("/usr/bin/apt-get").exists() {
        "install them with `apt-get install postgresql` (as root), or set REPRISE_PG_BIN to the folder that holds initdb, or set DATABASE_URL to use a server you run yourself".to_string()
    } else {
        "install the PostgreSQL server package of your system, or set REPRISE_PG_BIN to the folder that holds initdb, or set DATABASE_URL to use a server you run yourself".to_string()
    }
}

impl PgBinaries {
    /// Looks in `$REPRISE_PG_BIN`, then `pg_config --bindir`, then the newest
    /// `/usr/lib/postgresql/*/bin`, then `/usr/local/pgsql/bin`, then the `PATH`.
    pub fn find() -> Result<PgBinaries> {
        let mut searched = Vec::new();
        for dir in candidates() {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(PgBinaries { dir });
            }
            searched.push(dir.display().to_string());
        }
        Err(Error::NoBinaries {
            searched: searched.join(", "),
            hint: install_hint(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one tool.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("REPRISE_PG_BIN") {
        dirs.push(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    dirs.extend(versions.into_iter().map(|(_, dir)| dir));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}
