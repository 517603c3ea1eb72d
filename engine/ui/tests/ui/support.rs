//! What the UI tests run on: a test cluster (its own database, an engine and a worker) with
//! the shop's workflows, the UI serving it on a free port, headless Chromium driven over
//! chromedriver, and a bare HTTP client for what a browser hides (statuses, headers).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use reprise_engine::testing::{TestCluster, engine_options, worker_options};
use reprise_engine::{Client, Reprise};
use reprise_sdk::{ActivityDef, Registry, SignalDef, WorkflowContext, WorkflowDef, WorkflowError};
use reprise_ui::{Ui, UiOptions};
use serde::{Deserialize, Serialize};

/// Browser tests take turns: one Chromium at a time on a two-core machine.
pub(crate) static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Order {
    pub(crate) item: String,
    pub(crate) quantity: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Approval {
    pub(crate) by: String,
}

pub(crate) const ORDER: WorkflowDef<Order, String> = WorkflowDef::new("order");
pub(crate) const APPROVE: SignalDef<Approval> = SignalDef::new("approve");
const PACK: ActivityDef<Order, String> = ActivityDef::new("pack");
const SHIP: ActivityDef<String, String> = ActivityDef::new("ship");

/// Packs, then waits for approval, then ships.
async fn order(ctx: WorkflowContext, order: Order) -> Result<String, WorkflowError> {
    let packed = ctx.activity(PACK, &order).await?;
    ctx.set_status(&serde_json::json!({ "stage": "awaiting approval", "packed": packed }))
        .map_err(|e| WorkflowError::failed("Status", e.to_string()))?;
    let approval = ctx.signal(APPROVE).await?;
    let shipped = ctx.activity(SHIP, &packed).await?;
    Ok(format!("{shipped}, approved by {}", approval.by))
}

pub(crate) fn shop() -> reprise_sdk::RegistryBuilder {
    Registry::builder()
        .workflow(ORDER, order)
        .activity(PACK, |_ctx, order: Order| async move {
            Ok(format!("{} × {}", order.quantity, order.item))
        })
        .activity(SHIP, |_ctx, parcel: String| async move {
            Ok(format!("shipped {parcel}"))
        })
}

/// The shop on a test cluster, with the UI serving it.
pub(crate) struct Shop {
    pub(crate) cluster: TestCluster,
    pub(crate) address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Shop {
    pub(crate) async fn start(options: UiOptions) -> Shop {
        let cluster = TestCluster::start(shop().build().unwrap()).await.unwrap();
        let reader = cluster.client().clone();
        let writer = Some(cluster.client().clone());
        let ui = Ui::new(reader, writer, options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = ui.serve(listener, std::future::pending()).await;
        });
        Shop {
            cluster,
            address,
            server,
        }
    }

    pub(crate) fn client(&self) -> &Client {
        self.cluster.client()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub(crate) async fn stop(self) {
        self.server.abort();
        self.cluster.stop().await.unwrap();
    }

    /// Starts an order and waits until it waits for approval.
    pub(crate) async fn order_waiting(&self, id: &str, item: &str) {
        let order = Order {
            item: item.to_string(),
            quantity: 2,
        };
        self.client().start(ORDER, id, &order).await.unwrap();
        within(Duration::from_secs(20), async {
            while self
                .client()
                .describe(id)
                .await
                .unwrap()
                .custom_status
                .is_none()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
}

/// Fails the test if `work` takes longer than `limit`.
pub(crate) async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| panic!("not done within {limit:?}"))
}

// `shifty`: a workflow whose code changed under a running workflow (an activity became a
// timer), so that the build with the new code parks the run with both sides to show.
const SHIFTY: WorkflowDef<(), String> = WorkflowDef::new("shifty");
const GO: SignalDef<()> = SignalDef::new("go");
const PREPARE: ActivityDef<(), String> = ActivityDef::new("prepare");

async fn shifty_v1(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    ctx.activity(PREPARE, &()).await?;
    ctx.signal(GO).await?;
    Ok("went".to_string())
}

async fn shifty_v2(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    ctx.sleep(Duration::from_secs(1)).await?;
    ctx.signal(GO).await?;
    Ok("went".to_string())
}

/// The line of `shifty_v2`'s sleep, which the report names.
pub(crate) fn shifty_v2_line() -> u32 {
    let needle = concat!("ctx.sleep(Duration::from_secs(1)", ").await?;");
    let index = include_str!("support.rs")
        .lines()
        .position(|line| line.contains(needle))
        .unwrap();
    u32::try_from(index + 1).unwrap()
}

/// A run of `shifty` that build `v1` started and build `v2` parked. The cluster's own engine
/// does not know the type, so only these builds step it.
pub(crate) async fn parked_run(shop: &Shop, id: &str) {
    let pool = shop.cluster.store().pool().clone();
    let start = |registry: Registry, build: &str| {
        let mut engine = engine_options();
        engine.build = build.to_string();
        Reprise::builder()
            .pool(pool.clone())
            .migrate(false)
            .registry(registry)
            .engine(engine)
            .worker(worker_options())
            .start()
    };
    let v1 = Registry::builder()
        .workflow(SHIFTY, shifty_v1)
        .activity(
            PREPARE,
            |_ctx, ()| async move { Ok("prepared".to_string()) },
        )
        .build()
        .unwrap();
    let first = start(v1, "v1").await.unwrap();
    first.client().start(SHIFTY, id, &()).await.unwrap();
    within(Duration::from_secs(20), async {
        // Waiting for `go`: the activity's outcome was applied.
        while shop.client().describe(id).await.unwrap().head_seq.get() < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    first.shutdown().await.unwrap();
    let v2 = Registry::builder()
        .workflow(SHIFTY, shifty_v2)
        .build()
        .unwrap();
    let second = start(v2, "v2").await.unwrap();
    shop.client().signal(id, GO, &()).await.unwrap();
    within(Duration::from_secs(20), async {
        while shop
            .client()
            .describe(id)
            .await
            .unwrap()
            .parked_reason
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    second.shutdown().await.unwrap();
}

/// A headless Chromium on its own chromedriver, stopped when dropped.
pub(crate) struct Chromium {
    pub(crate) browser: Browser,
    driver: Child,
}

impl Chromium {
    /// Starts chromedriver (`REPRISE_CHROMEDRIVER`, or `chromedriver` on the PATH: Debian's
    /// `chromium-driver`, which `cargo xtask test` installs on CI) and a browser session.
    pub(crate) async fn start() -> Chromium {
        let driver_binary =
            std::env::var("REPRISE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_string());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = Command::new(&driver_binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {driver_binary}: {e}; install chromium and chromium-driver (apt-get install chromium chromium-driver), or set REPRISE_CHROMEDRIVER")
            });
        let mut chrome = serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--force-device-scale-factor=1"],
        });
        if let Ok(binary) = std::env::var("REPRISE_CHROMIUM") {
            chrome["binary"] = binary.into();
        } else if std::path::Path::new("/usr/bin/chromium").exists() {
            chrome["binary"] = "/usr/bin/chromium".into();
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_string(), chrome);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{port}");
        let mut tries = 0;
        let browser = loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(browser) => break browser,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session from chromedriver: {e}"),
            }
        };
        Chromium { browser, driver }
    }

    /// The text of the first element `css` finds, waiting up to 20 s for it.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits until the page's text contains `needle` (live refresh, a reload).
    pub(crate) async fn wait_for_text(&self, css: &str, needle: &str) {
        within(Duration::from_secs(30), async {
            loop {
                if let Ok(element) = self.browser.find(Locator::Css(css)).await
                    && let Ok(text) = element.text().await
                    && text.contains(needle)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }

    /// Clicks what `css` finds.
    pub(crate) async fn click(&self, css: &str) {
        self.browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Replaces the text of the field `css` finds.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let field = self.browser.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Accepts the confirmation an action asks for.
    pub(crate) async fn confirm(&self) {
        within(Duration::from_secs(10), async {
            while self.browser.accept_alert().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }

    /// Writes a screenshot of the page to `docs/screenshots/<name>.png` (the README shows
    /// them).
    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        let dir = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/screenshots"
        ));
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.browser.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A bare HTTP/1.1 exchange: status, headers, body.
pub(crate) async fn http(address: SocketAddr, request: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, head.to_string(), body.to_string())
}

/// `GET path` with extra header lines.
pub(crate) async fn get(address: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    http(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n"),
    )
    .await
}

/// `POST path` with a form body and extra header lines.
pub(crate) async fn post(
    address: SocketAddr,
    path: &str,
    headers: &str,
    form: &str,
) -> (u16, String, String) {
    http(
        address,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{headers}\r\n{form}",
            form.len()
        ),
    )
    .await
}
