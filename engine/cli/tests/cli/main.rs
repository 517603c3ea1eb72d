//! The `reprise` binary, run as an operator runs it, against a real PostgreSQL server: the
//! one `DATABASE_URL` names (as `cargo xtask test` sets it), or else the project's private
//! server. Each test works in a database of its own.

// Test helpers fail loudly on purpose: a broken fixture should stop the test at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

mod batch;
mod schedules;
mod verify;
mod workflows;

/// A database of the test's own, dropped at the end.
pub(crate) struct TestDb {
    pub(crate) url: String,
    name: String,
    admin: PgPool,
}

impl TestDb {
    pub(crate) async fn empty() -> TestDb {
        let server = match reprise_devdb::database_url_from_env() {
            Some(url) => url,
            None => {
                let project = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
                let dev = reprise_devdb::DevPostgres::for_project(project).unwrap();
                dev.ensure_running().unwrap().url
            }
        };
        let base = PgConnectOptions::from_str(&server).unwrap();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .unwrap();
        let name = format!("reprise_cli_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let url = base.database(&name).to_url_lossy().to_string();
        TestDb { url, name, admin }
    }

    pub(crate) fn reprise(&self, args: &[&str]) -> Output {
        self.reprise_with_env(args, &[])
    }

    pub(crate) fn reprise_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_reprise"))
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env_remove("REPRISE_PAYLOAD_KEYS")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    pub(crate) async fn drop_database(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn two_processes_migrating_at_once_both_succeed() {
    let db = TestDb::empty().await;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| db.reprise(&["migrate"]));
        let b = s.spawn(|| db.reprise(&["migrate"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let expected = format!(
        "schema version {}\n",
        reprise_engine::schema::expected_version()
    );
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "migrate failed: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), expected);
    }
    db.drop_database().await;
}

#[tokio::test]
async fn a_status_typo_is_an_error_that_lists_the_valid_statuses() {
    let db = TestDb::empty().await;
    assert!(db.reprise(&["migrate"]).status.success());
    let out = db.reprise(&["list", "--status", "runing"]);
    assert!(
        !out.status.success(),
        "a typo listed: {}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("\"runing\""), "{stderr}");
    assert!(
        stderr.contains("running, completed, failed, cancelled, terminated, continued_as_new"),
        "{stderr}"
    );
    let out = db.reprise(&["list", "--status", "continued_as_new"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    db.drop_database().await;
}
