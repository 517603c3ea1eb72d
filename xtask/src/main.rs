//! `cargo xtask`: project automation, in Rust so that it runs wherever cargo does.
//!
//! `cargo xtask test [ARGS...]` runs `cargo test --workspace [ARGS...]` with `DATABASE_URL`
//! pointing at a PostgreSQL server: the one `DATABASE_URL` already names, or else the
//! project's private server, which it installs (on CI, from the system's packages), starts,
//! and stops again afterwards if it started it. The web UI's browser tests drive headless
//! Chromium over chromedriver: on CI it installs both from the system's packages when they
//! are missing (Debian: `chromium`, `chromium-driver`).

use std::path::Path;
use std::process::{Command, ExitCode};

use reprise_devdb::{DevPostgres, PgBinaries};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => match test(&args[1..]) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("xtask test: {message}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo xtask test [ARGS passed to cargo test...]");
            ExitCode::from(2)
        }
    }
}

fn project_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn test(args: &[String]) -> Result<ExitCode, String> {
    let mut stop_after: Option<DevPostgres> = None;
    let url = match reprise_devdb::database_url_from_env() {
        Some(url) => {
            eprintln!("xtask test: using the server named by DATABASE_URL");
            url
        }
        None => {
            ensure_binaries()?;
            let dev = DevPostgres::for_project(project_dir()).map_err(|e| e.to_string())?;
            let started = dev.ensure_running().map_err(|e| e.to_string())?;
            eprintln!(
                "xtask test: private PostgreSQL {} at {}",
                if started.started_now {
                    "started"
                } else {
                    "already running, reused"
                },
                dev.root().display()
            );
            if started.started_now {
                stop_after = Some(dev);
            }
            started.url
        }
    };
    ensure_browser()?;
    // `cargo xtask test -p NAME` narrows the run; otherwise every crate is tested.
    let narrowed = args.iter().any(|a| a == "-p" || a.starts_with("--package"));
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.arg("test");
    if !narrowed {
        cargo.arg("--workspace");
    }
    let status = cargo
        .args(args)
        .env("DATABASE_URL", &url)
        .current_dir(project_dir())
        .status();
    if let Some(dev) = stop_after {
        match dev.stop() {
            Ok(_) => eprintln!("xtask test: private PostgreSQL stopped"),
            Err(e) => eprintln!("xtask test: could not stop the private PostgreSQL: {e}"),
        }
    }
    let status = status.map_err(|e| format!("could not run cargo test: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// On CI, installs PostgreSQL from the system's packages when its binaries are missing;
/// elsewhere, says what to install.
fn ensure_binaries() -> Result<(), String> {
    if PgBinaries::find().is_ok() {
        return Ok(());
    }
    if !on_ci() {
        return Err(format!(
            "no PostgreSQL server binaries found: {}",
            reprise_devdb::install_hint()
        ));
    }
    eprintln!("xtask test: CI without PostgreSQL: installing it with apt-get");
    apt_install(&["postgresql"], false)?;
    PgBinaries::find().map(|_| ()).map_err(|e| e.to_string())
}

/// Whether a program answers `--version`.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The browser tests need chromedriver (`REPRISE_CHROMEDRIVER`, or on the PATH) and
/// Chromium: on CI they are installed when missing; elsewhere, says what to install.
fn ensure_browser() -> Result<(), String> {
    let driver = std::env::var("REPRISE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    if runs(&driver) {
        return Ok(());
    }
    if !on_ci() {
        return Err("no chromedriver found for the web UI's browser tests: install Chromium and its driver (Debian: `apt-get install chromium chromium-driver`) or set REPRISE_CHROMEDRIVER".to_string());
    }
    eprintln!(
        "xtask test: CI without a browser: installing chromium and chromium-driver with apt-get"
    );
    // With recommends: the fonts pages are drawn with.
    apt_install(&["chromium", "chromium-driver"], true)?;
    if runs(&driver) {
        Ok(())
    } else {
        Err(format!(
            "{driver} still does not run after installing chromium-driver"
        ))
    }
}

/// `apt-get update` and `apt-get install` of `packages`, with their recommended packages or
/// without.
fn apt_install(packages: &[&str], recommends: bool) -> Result<(), String> {
    let mut install = vec!["apt-get", "install", "-y", "-q"];
    if !recommends {
        install.push("--no-install-recommends");
    }
    install.extend_from_slice(packages);
    for step in [vec!["apt-get", "update", "-q"], install] {
        let status = Command::new(step[0])
            .args(&step[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("could not run {}: {e}", step.join(" ")))?;
        if !status.success() {
            return Err(format!("`{}` failed: {status}", step.join(" ")));
        }
    }
    Ok(())
}
