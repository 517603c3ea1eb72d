//! Starting, reusing and stopping the private cluster.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::binaries::PgBinaries;
use crate::error::{Error, Result};

/// Unix socket paths are limited to about 107 bytes; past this we keep the cluster in /tmp.
const MAX_SOCKET_DIR_LEN: usize = 80;

/// The database and superuser name in the private cluster.
const NAME: &str = "reprise";

/// The private PostgreSQL of one project.
#[derive(Clone, Debug)]
pub struct DevPostgres {
    bin: PgBinaries,
    root: PathBuf,
    as_postgres_user: bool,
}

/// How [`DevPostgres::restart`] stops the server before starting it again (`pg_ctl -m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Sessions are ended and a checkpoint is written: a clean restart.
    Fast,
    /// The server is killed without a checkpoint and recovers from its WAL when it starts: a
    /// crash.
    Immediate,
}

/// The outcome of [`DevPostgres::ensure_running`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The connection URL (unix socket).
    pub url: String,
    /// Whether this call started the server (false: it was already running).
    pub started_now: bool,
}

impl DevPostgres {
    /// The private cluster of the project at `project_dir`, kept in `project_dir/.reprise/postgres`
    /// (or `$REPRISE_DEV_DIR/postgres`). When the server user cannot reach that folder, or its
    /// socket path would be too long, the cluster lives in `/tmp/reprise-<hash>` instead.
    pub fn for_project(project_dir: &Path) -> Result<DevPostgres> {
        let project_dir = project_dir.canonicalize().map_err(|source| Error::Io {
            action: "resolving",
            path: project_dir.to_path_buf(),
            source,
        })?;
        let base = match std::env::var_os("REPRISE_DEV_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => project_dir.join(".reprise"),
        };
        DevPostgres::in_dir(&base)
    }

    /// A private cluster kept in `base/postgres`, whatever `REPRISE_DEV_DIR` says: a server
    /// of a test's own, which it may stop, restart or crash without touching the project's.
    /// (Like [`DevPostgres::for_project`], it moves to `/tmp/reprise-<hash>` when the server
    /// user cannot reach `base` or the socket path would be too long.)
    pub fn in_dir(base: &Path) -> Result<DevPostgres> {
        let bin = PgBinaries::find()?;
        let as_postgres_user = running_as_root();
        if as_postgres_user && !user_exists("postgres") {
            return Err(Error::NoPostgresUser);
        }
        let base = absolute(base)?;
        let mut server = DevPostgres {
            bin,
            root: base.join("postgres"),
            as_postgres_user,
        };
        if !server.root_is_usable(&base) {
            let hash = blake3::hash(base.to_string_lossy().as_bytes()).to_hex();
            server.root = PathBuf::from(format!("/tmp/reprise-{}", &hash[..12])).join("postgres");
        }
        Ok(server)
    }

    /// The folder that holds the cluster, its socket, its log and its lock.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The connection URL of the private server (whether or not it runs).
    pub fn url(&self) -> String {
        format!(
            "postgres://{NAME}@localhost/{NAME}?host={}",
            percent_encode(&self.socket_dir().to_string_lossy())
        )
    }

    /// The folder of the PostgreSQL binaries in use.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bin
    }

    /// Starts the server unless it already runs, creating the cluster on first use.
    /// Safe to call from several processes at once: they serialize on a lock file.
    pub fn ensure_running(&self) -> Result<Started> {
        let _lock = self.lock()?;
        if self.is_running()? {
            return Ok(Started {
                url: self.url(),
                started_now: false,
            });
        }
        let fresh = !self.data_dir().join("PG_VERSION").exists();
        if fresh {
            self.init()?;
        }
        let log = self.log_file().to_string_lossy().into_owned();
        let data = self.data_dir().to_string_lossy().into_owned();
        let out = self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-t", "60", "start"],
        )?;
        if !out.status.success() {
            return Err(self.command_error("pg_ctl start", &out, true));
        }
        if fresh {
            self.create_database()?;
        }
        Ok(Started {
            url: self.url(),
            started_now: true,
        })
    }

    /// Whether the server runs.
    pub fn is_running(&self) -> Result<bool> {
        if !self.data_dir().join("PG_VERSION").exists() {
            return Ok(false);
        }
        let data = self.data_dir().to_string_lossy().into_owned();
        let out = self.run("pg_ctl", &["-D", &data, "status"])?;
        // pg_ctl status: 0 running, 3 not running, 4 no accessible data directory.
        Ok(out.status.success())
    }

    /// Stops the server if it runs (fast shutdown: open sessions are ended, data is safe).
    /// Returns whether it was running.
    pub fn stop(&self) -> Result<bool> {
        let _lock = self.lock()?;
        if !self.is_running()? {
            return Ok(false);
        }
        let data = self.data_dir().to_string_lossy().into_owned();
        let out = self.run(
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"],
        )?;
        if !out.status.success() {
            return Err(self.command_error("pg_ctl stop", &out, true));
        }
        Ok(true)
    }

    /// Restarts the running server, stopping it as `mode` says, and returns once it accepts
    /// connections again (after crash recovery, for [`StopMode::Immediate`]).
    pub fn restart(&self, mode: StopMode) -> Result<()> {
        let _lock = self.lock()?;
        let log = self.log_file().to_string_lossy().into_owned();
        let data = self.data_dir().to_string_lossy().into_owned();
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        // `-l` as at the start: without it the new server would write to this command's
        // output pipe, which `output()` then waits on for as long as the server runs.
        let out = self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-m", mode, "-w", "-t", "60", "restart",
            ],
        )?;
        if !out.status.success() {
            return Err(self.command_error("pg_ctl restart", &out, true));
        }
        Ok(())
    }

    fn init(&self) -> Result<()> {
        for dir in [self.root.clone(), self.socket_dir()] {
            fs::create_dir_all(&dir).map_err(|source| Error::Io {
                action: "creating",
                path: dir.clone(),
                source,
            })?;
        }
        if self.as_postgres_user {
            let root = self.root.to_string_lossy().into_owned();
            let out = plain_output(Command::new("chown").args(["-R", "postgres:postgres", &root]))?;
            if !out.status.success() {
                return Err(command_error("chown", &out, String::new()));
            }
        }
        let data = self.data_dir().to_string_lossy().into_owned();
        let out = self.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                NAME,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
        )?;
        if !out.status.success() {
            return Err(self.command_error("initdb", &out, false));
        }
        let socket = self.socket_dir().to_string_lossy().into_owned();
        let settings = format!(
            "\n# Reprise private development server: unix socket only, never a network address.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{socket}'\n\
             max_connections = 300\n\
             log_min_messages = warning\n"
        );
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(|source| Error::Io {
            action: "reading",
            path: conf.clone(),
            source,
        })?;
        text.push_str(&settings);
        fs::write(&conf, text).map_err(|source| Error::Io {
            action: "writing",
            path: conf,
            source,
        })
    }

    fn create_database(&self) -> Result<()> {
        let socket = self.socket_dir().to_string_lossy().into_owned();
        let out = self.run("createdb", &["-h", &socket, "-U", NAME, NAME])?;
        if !out.status.success() {
            return Err(self.command_error("createdb", &out, false));
        }
        Ok(())
    }

    fn lock(&self) -> Result<File> {
        let parent = self.root.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).map_err(|source| Error::Io {
            action: "creating",
            path: parent.clone(),
            source,
        })?;
        let path = parent.join("postgres.lock");
        let file = File::create(&path).map_err(|source| Error::Io {
            action: "creating",
            path: path.clone(),
            source,
        })?;
        file.lock().map_err(|source| Error::Io {
            action: "locking",
            path,
            source,
        })?;
        Ok(file)
    }

    /// Runs a PostgreSQL tool, as the `postgres` user when we are root.
    fn run(&self, tool: &str, args: &[&str]) -> Result<Output> {
        let path = self.bin.tool(tool);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args);
        // Run from a folder the postgres user can always enter.
        command.current_dir("/");
        plain_output(&mut command)
    }

    fn command_error(&self, command: &str, out: &Output, with_log: bool) -> Error {
        let log = if with_log {
            let text = fs::read_to_string(self.log_file()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "\nserver log ({}):\n{}",
                self.log_file().display(),
                tail.join("\n")
            )
        } else {
            String::new()
        };
        command_error(command, out, log)
    }

    /// Whether the server user can create and reach the cluster under `base`.
    fn root_is_usable(&self, base: &Path) -> bool {
        if self.socket_dir().to_string_lossy().len() > MAX_SOCKET_DIR_LEN {
            return false;
        }
        if !self.as_postgres_user {
            return true;
        }
        // The postgres user must be able to walk down to the project folder.
        let probe = base.parent().unwrap_or(base).to_string_lossy().into_owned();
        Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-x", &probe])
            .current_dir("/")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

fn plain_output(command: &mut Command) -> Result<Output> {
    let program = command.get_program().to_string_lossy().into_owned();
    command.output().map_err(|source| Error::Io {
        action: "running",
        path: PathBuf::from(program),
        source,
    })
}

fn command_error(command: &str, out: &Output, extra: String) -> Error {
    Error::Command {
        command: command.to_string(),
        status: out.status.to_string(),
        output: format!(
            "{}{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim(),
            extra
        ),
    }
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .args(["-u", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|source| Error::Io {
        action: "resolving",
        path: path.to_path_buf(),
        source,
    })
}

/// Percent-encodes everything but unreserved characters and `/`, for a URL query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_url_is_percent_encoded() {
        assert_eq!(percent_encode("/a b/c.d"), "/a%20b/c.d");
    }
}
