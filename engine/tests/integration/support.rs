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

    /// Options to connect to the test's database (as its owner).
    pub(crate) fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url).expect("the test URL parses")
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

/// A TCP proxy in front of the test's server that the test can cut, as a restart or a network
/// failure does: every connection through it is dropped, and new ones are closed at once, until
/// it is let through again. Unlike `TestDb::reachable`, what clients see is what they see when
/// the server goes away: connections ended under them and connections refused.
pub(crate) struct CuttableLink {
    /// Connect options that go through the link.
    pub(crate) options: PgConnectOptions,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: tokio::task::AbortHandle,
}

/// Where the link forwards to: the server's unix socket or its TCP address.
#[derive(Clone)]
enum Upstream {
    Unix(std::path::PathBuf),
    Tcp(String, u16),
}

impl Upstream {
    async fn forward(&self, mut inbound: tokio::net::TcpStream) {
        let copied = match self {
            Upstream::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                Ok(mut upstream) => {
                    tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await
                }
                Err(e) => Err(e),
            },
            Upstream::Tcp(host, port) => {
                match tokio::net::TcpStream::connect((host.as_str(), *port)).await {
                    Ok(mut upstream) => {
                        tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        drop(copied);
    }
}

impl CuttableLink {
    /// A link to `db`'s database.
    pub(crate) async fn to(db: &TestDb) -> CuttableLink {
        let direct = PgConnectOptions::from_str(&db.url).expect("the test URL parses");
        let upstream = match direct.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{}", direct.get_port()))),
            None => Upstream::Tcp(direct.get_host().to_string(), direct.get_port()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the link");
        let port = listener.local_addr().expect("the link's address").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepting = {
            let (cut, open) = (cut.clone(), open.clone());
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if cut.load(std::sync::atomic::Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let forwarding = tokio::spawn(async move { upstream.forward(inbound).await });
                    open.lock().unwrap().push(forwarding.abort_handle());
                }
            })
            .abort_handle()
        };
        let mut options = PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(port)
            .username(direct.get_username())
            .database(
                direct
                    .get_database()
                    .expect("the test URL names its database"),
            );
        if let Some(password) = std::env::var("PGPASSWORD")
            .ok()
            .or_else(|| url_password(&db.url))
        {
            options = options.password(&password);
        }
        CuttableLink {
            options,
            cut,
            open,
            accepting,
        }
    }

    /// Cuts every connection through the link and closes new ones until [`CuttableLink::mend`].
    pub(crate) fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for forwarding in self.open.lock().unwrap().drain(..) {
            forwarding.abort();
        }
    }

    /// Lets connections through again.
    pub(crate) fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableLink {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// The password in a `postgres://user:password@...` URL, if it has one.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let credentials = rest.split_once('@')?.0;
    credentials.split_once(':').map(|(_, p)| p.to_string())
}
