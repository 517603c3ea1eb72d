//! A fresh database per test.

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// The server every test uses.
fn server_url() -> String {
    if let Some(url) = reprise_devdb::database_url_from_env() {
        return url;
    }
    let project = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let dev = reprise_devdb::DevPostgres::for_project(project).expect("private PostgreSQL");
    dev.ensure_running().expect("private PostgreSQL starts").url
}

/// A database of the test's own, empty (not migrated).
pub(crate) struct TestDb {
    pub(crate) pool: PgPool,
    pub(crate) url: String,
    name: String,
    admin: PgPool,
}

impl TestDb {
    pub(crate) async fn empty() -> TestDb {
        // Engine warnings (a failed step, a parked run) show in the output of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let base = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL parses");
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(base.clone())
            .await
            .expect("connect to the test server");
        let name = format!("reprise_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create test database");
        let options = base.database(&name);
        let url = options.to_url_lossy().to_string();
        let pool = reprise_engine::pool_options()
            .max_connections(8)
            .connect_with(options)
            .await
            .expect("connect to the test database");
        TestDb {
            pool,
            url,
            name,
            admin,
        }
    }

    /// A database with Reprise's schema applied.
    pub(crate) async fn migrated() -> TestDb {
        let db = TestDb::empty().await;
        reprise_engine::schema::migrate(&db.pool)
            .await
            .expect("migrate");
        db
    }

    /// Another pool on the same database (as a second process would have).
    pub(crate) async fn second_pool(&self) -> PgPool {
        reprise_engine::pool_options()
            .max_connections(4)
            .connect(&self.url)
            .await
            .expect("second pool")
    }

    /// Makes the database unreachable, as a stopped server is: new connections are refused
    /// and every open one is ended. `reachable(true)` lets connections in again.
    pub(crate) async fn reachable(&self, reachable: bool) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS {reachable}",
            self.name
        )))
        .execute(&self.admin)
        .await
        .expect("change the database's connection rule");
        if !reachable {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&self.name)
            .execute(&self.admin)
            .await
            .expect("end the database's connections");
        }
    }

    pub(crate) async fn drop_database(self) {
        self.pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .expect("drop test database");
    }
}
