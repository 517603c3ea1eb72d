//! Who may see and do what, over bare HTTP: the access token (bearer or login cookie), the
//! CSRF token on actions, read-only mode, 404s, and the address check.

use std::net::SocketAddr;

use reprise_history::RunState;
use reprise_ui::{UiError, UiOptions, check_listen_address};

use crate::support::{Shop, get, http, post};

fn cookie_value(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_token_nothing_is_read() {
    let shop = Shop::start(UiOptions {
        access_token: Some("s3cret-token".to_string()),
        ..UiOptions::default()
    })
    .await;
    shop.order_waiting("secret-order", "vault").await;
    let run = shop.client().describe("secret-order").await.unwrap().run_id;

    let (status, _, body) = get(shop.address, "/api/runs", "").await;
    assert_eq!(status, 401);
    assert!(!body.contains("secret-order"));
    let (status, head, body) = get(shop.address, &format!("/runs/{run}"), "").await;
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate") || head.contains("www-authenticate"));
    assert!(
        !body.contains("vault") && !body.contains("secret-order"),
        "{body}"
    );
    let (status, _, _) = get(shop.address, "/api/runs", "Authorization: Bearer wrong\r\n").await;
    assert_eq!(status, 401);

    let (status, _, body) = get(
        shop.address,
        "/api/runs",
        "Authorization: Bearer s3cret-token\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("secret-order"));

    // The login page: its CSRF cookie, then the token, then a login cookie that is not the
    // token and opens the pages.
    let (status, head, _) = get(shop.address, "/login", "").await;
    assert_eq!(status, 200);
    let csrf = cookie_value(&head, "reprise_csrf").unwrap();
    let cookie = format!("Cookie: reprise_csrf={csrf}\r\n");
    let (status, _, _) = post(
        shop.address,
        "/login",
        &cookie,
        &format!("csrf={csrf}&token=nope"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, head, _) = post(
        shop.address,
        "/login",
        &cookie,
        &format!("csrf={csrf}&token=s3cret-token"),
    )
    .await;
    assert_eq!(status, 303);
    let login = cookie_value(&head, "reprise_login").unwrap();
    assert!(!login.contains("s3cret"));
    let (status, _, body) = get(
        shop.address,
        &format!("/runs/{run}"),
        &format!("Cookie: reprise_login={login}\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("vault"));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_without_its_csrf_token_or_from_another_site_is_refused() {
    let shop = Shop::start(UiOptions::default()).await;
    shop.order_waiting("csrf-order", "mug").await;
    let run = shop.client().describe("csrf-order").await.unwrap().run_id;
    let path = format!("/runs/{run}/cancel");
    let (_, head, _) = get(shop.address, "/runs", "").await;
    let csrf = cookie_value(&head, "reprise_csrf").unwrap();

    let (status, _, _) = post(shop.address, &path, "", "reason=forged").await;
    assert_eq!(status, 403, "no token at all");
    let (status, _, _) = post(
        shop.address,
        &path,
        &format!("Cookie: reprise_csrf={csrf}\r\n"),
        "csrf=00000000000000000000000000000000&reason=forged",
    )
    .await;
    assert_eq!(status, 403, "a token that is not the cookie's");
    let (status, _, _) = post(
        shop.address,
        &path,
        &format!("Cookie: reprise_csrf={csrf}\r\nSec-Fetch-Site: cross-site\r\n"),
        &format!("csrf={csrf}&reason=forged"),
    )
    .await;
    assert_eq!(status, 403, "from another site");
    let d = shop.client().describe("csrf-order").await.unwrap();
    assert_eq!(d.status, RunState::Running);
    assert!(
        shop.client()
            .history_page(run, reprise_history::Seq::new(0), 100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.kind.name() != "CancelRequested"),
        "nothing was sent"
    );

    let (status, head, _) = post(
        shop.address,
        &path,
        &format!("Cookie: reprise_csrf={csrf}\r\n"),
        &format!("csrf={csrf}&reason=asked"),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_shows_everything_and_changes_nothing() {
    let shop = Shop::start(UiOptions {
        read_only: true,
        ..UiOptions::default()
    })
    .await;
    shop.order_waiting("ro-order", "plate").await;
    let run = shop.client().describe("ro-order").await.unwrap().run_id;
    let (status, head, body) = get(shop.address, &format!("/runs/{run}"), "").await;
    assert_eq!(status, 200);
    assert!(body.contains("plate") && body.contains("read-only"));
    assert!(!body.contains("id=\"actions\"") && !body.contains("bulk-form"));
    let csrf = cookie_value(&head, "reprise_csrf").unwrap();
    let (status, _, body) = post(
        shop.address,
        &format!("/runs/{run}/terminate"),
        &format!("Cookie: reprise_csrf={csrf}\r\n"),
        &format!("csrf={csrf}&reason=no"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("read-only"));
    assert_eq!(
        shop.client().describe("ro-order").await.unwrap().status,
        RunState::Running
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_run_is_a_404_with_a_search_box() {
    let shop = Shop::start(UiOptions::default()).await;
    for path in [
        "/runs/6f281f26-fce1-42a6-a9f9-037e3b7ed901",
        "/runs/not-a-run",
        "/workflows/nobody",
        "/no/such/page",
    ] {
        let (status, _, body) = get(shop.address, path, "").await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("type=\"search\""), "{path}: {body}");
    }
    let (status, _, body) = get(
        shop.address,
        "/api/runs/6f281f26-fce1-42a6-a9f9-037e3b7ed901",
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""));
    let (status, _, body) = get(shop.address, "/runs?status=sleeping", "").await;
    assert_eq!(status, 400);
    assert!(body.contains("status:"), "{body}");
    shop.stop().await;
}

#[test]
fn a_public_address_needs_a_token() {
    let public: SocketAddr = "0.0.0.0:8233".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:8233".parse().unwrap();
    assert!(matches!(
        check_listen_address(public, &UiOptions::default()),
        Err(UiError::TokenRequired { .. })
    ));
    assert!(check_listen_address(local, &UiOptions::default()).is_ok());
    let with_token = UiOptions {
        access_token: Some("t".into()),
        ..UiOptions::default()
    };
    assert!(check_listen_address(public, &with_token).is_ok());
    let empty = UiOptions {
        access_token: Some(String::new()),
        ..UiOptions::default()
    };
    assert!(matches!(
        check_listen_address(local, &empty),
        Err(UiError::EmptyToken)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn under_a_base_path_every_link_and_form_stays_under_it() {
    let shop = Shop::start(UiOptions {
        base_path: "/ui".to_string(),
        ..UiOptions::default()
    })
    .await;
    shop.order_waiting("mounted-1", "jug").await;
    let (status, head, body) = get(shop.address, "/ui/runs", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("href=\"/ui/runs/"), "{body}");
    assert!(body.contains("action=\"/ui/batches/new\""), "{body}");
    assert!(
        !body.contains("href=\"/runs"),
        "no link escapes the base path"
    );
    assert!(head.contains("Path=/ui"), "{head}");
    let (status, _, _) = get(shop.address, "/runs", "").await;
    assert_eq!(status, 404);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_run_offers_no_action_and_refuses_one() {
    let shop = Shop::start(UiOptions::default()).await;
    shop.order_waiting("reset-me", "bowl").await;
    let first = shop.client().describe("reset-me").await.unwrap().run_id;
    shop.client()
        .terminate("reset-me", "to reset it")
        .await
        .unwrap();
    let second = shop.client().reset("reset-me", 2).await.unwrap();
    let (status, head, body) = get(shop.address, &format!("/runs/{first}"), "").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("id=\"not-latest\"") && body.contains(&second.to_string()),
        "{body}"
    );
    assert!(!body.contains("reset here") && !body.contains("id=\"actions\""));
    let csrf = cookie_value(&head, "reprise_csrf").unwrap();
    let (status, _, body) = post(
        shop.address,
        &format!("/runs/{first}/reset"),
        &format!("Cookie: reprise_csrf={csrf}\r\n"),
        &format!("csrf={csrf}&seq=2"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("no longer the latest"), "{body}");
    let latest = shop.client().describe("reset-me").await.unwrap().run_id;
    assert_eq!(latest, second, "nothing was reset again");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_a_request_for_another_host_is_refused() {
    let shop = Shop::start(UiOptions::default()).await;
    shop.order_waiting("rebound", "cup").await;
    let (status, _, body) = http(
        shop.address,
        "GET /api/runs HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403);
    assert!(!body.contains("rebound"));
    let (status, _, _) = get(shop.address, "/api/runs", "").await;
    assert_eq!(status, 200, "the test client names 127.0.0.1");
    shop.stop().await;
}
