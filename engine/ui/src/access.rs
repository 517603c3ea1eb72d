//! Who may use the UI: the access token (a bearer header, or the cookie the login page sets)
//! and the CSRF token every action carries.
//!
//! The CSRF token is a double-submit cookie: a random value set on the first page, `SameSite`
//! strict, sent back by every form (a hidden `csrf` field) or script (`x-reprise-csrf`). A page
//! of another site cannot read it, so it cannot forge an action. A request with a valid bearer
//! header is a tool's, not a browser's, and needs no CSRF token.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::Ui;
use crate::layout::{page, respond};

/// The cookie that holds the login (a value derived from the token, never the token).
const LOGIN_COOKIE: &str = "reprise_login";
/// The cookie that holds the CSRF token.
const CSRF_COOKIE: &str = "reprise_csrf";
/// The header scripts send the CSRF token in.
const CSRF_HEADER: &str = "x-reprise-csrf";
/// The largest form an action takes (a signal's or update's JSON).
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The request's CSRF token, for the forms of the page it renders.
#[derive(Clone, Debug)]
pub(crate) struct Csrf(pub(crate) String);

/// Equal in constant time: compares digests, so the time taken says nothing of the secret.
fn same_secret(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// What the login cookie holds for `token`.
fn login_value(token: &str) -> String {
    let key = blake3::derive_key("reprise ui login cookie v1", token.as_bytes());
    blake3::Hash::from(key).to_hex().to_string()
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// A CSRF token as this UI writes them (32 hex digits); anything else is replaced.
fn well_formed(token: &str) -> bool {
    token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the request names this machine as its host. Without an access token the UI
/// answers only such requests: a page of another site that points its own domain name at
/// 127.0.0.1 (DNS rebinding) sends its own name as the host, and is refused.
fn names_this_machine(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks the access token (or, without one, that the request names this machine), then the
/// CSRF token of actions; sets the CSRF cookie.
pub(crate) async fn guard(State(ui): State<Ui>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let headers = request.headers();
    let by_bearer = match ui.options().access_token.as_deref() {
        None if !names_this_machine(headers) => {
            return (
                StatusCode::FORBIDDEN,
                "refused: without an access token this UI answers only requests for localhost\n",
            )
                .into_response();
        }
        None => false,
        Some(token) => {
            let by_bearer = bearer(headers).is_some_and(|b| same_secret(b, token));
            let by_cookie =
                cookie(headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &login_value(token)));
            // The guard sees paths without the base path (it runs inside the nested router).
            let open = path == "/login" || path.starts_with("/assets/");
            if !by_bearer && !by_cookie && !open {
                return unauthorized(&ui, &path);
            }
            by_bearer
        }
    };
    let existing = cookie(headers, CSRF_COOKIE)
        .filter(|t| well_formed(t))
        .map(str::to_string);
    let fresh = existing.is_none();
    let csrf = existing.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut request = request;
    if request.method() == Method::POST && !by_bearer {
        request = match checked_post(request, &csrf).await {
            Ok(request) => request,
            Err(response) => return response,
        };
    }
    request.extensions_mut().insert(Csrf(csrf.clone()));
    let mut response = next.run(request).await;
    if fresh {
        let path = if ui.options().base_path.is_empty() {
            "/"
        } else {
            ui.options().base_path.as_str()
        };
        let value = format!("{CSRF_COOKIE}={csrf}; Path={path}; SameSite=Strict");
        if let Ok(value) = value.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A POST from a browser must carry the CSRF token (header or form field) and must not come
/// from another site; its body is read here and handed on unchanged.
async fn checked_post(request: Request, csrf: &str) -> Result<Request, Response> {
    let refuse = |why: &str| {
        (
            StatusCode::FORBIDDEN,
            format!("refused: {why}; reload the page and try again\n"),
        )
            .into_response()
    };
    let headers = request.headers();
    // A browser says where a request comes from; only the UI's own pages (or the user
    // typing) may act. `same-site` is refused too: a sibling subdomain can set cookies.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"))
    {
        return Err(refuse("the request came from another site"));
    }
    if let Some(sent) = headers.get(CSRF_HEADER) {
        return match sent.to_str() {
            Ok(sent) if same_secret(sent, csrf) => Ok(request),
            _ => Err(refuse("the CSRF token does not match")),
        };
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| refuse("the form is too large"))?;
    let sent = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned());
    match sent {
        Some(sent) if same_secret(&sent, csrf) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Some(_) => Err(refuse("the CSRF token does not match")),
        None => Err(refuse("the form carries no CSRF token")),
    }
}

fn unauthorized(ui: &Ui, path: &str) -> Response {
    if path.contains("/api/") {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({ "error": "an access token is required" })),
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        login_markup(ui, None, None),
    )
        .into_response()
}

fn login_markup(ui: &Ui, csrf: Option<&Csrf>, error: Option<&str>) -> maud::Markup {
    let body = html! {
        section.narrow {
            h1 { "Sign in" }
            p { "This Reprise UI needs its access token." }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            @match csrf {
                Some(csrf) => form method="post" action=(ui.href("/login")) {
                    input type="hidden" name="csrf" value=(csrf.0);
                    label { "Access token " input type="password" name="token" autofocus; }
                    button type="submit" { "Sign in" }
                },
                None => p { a href=(ui.href("/login")) { "Sign in" } },
            }
        }
    };
    page(ui, None, "Sign in", body)
}

/// The login form.
pub(crate) async fn login_page(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
) -> Response {
    respond(login_markup(&ui, Some(&csrf), None))
}

/// The login form's fields.
#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// Checks the token and sets the login cookie.
pub(crate) async fn login(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let Some(token) = ui.options().access_token.as_deref() else {
        return Redirect::to(&ui.href("/runs")).into_response();
    };
    if !same_secret(&form.token, token) {
        return (
            StatusCode::UNAUTHORIZED,
            login_markup(&ui, Some(&csrf), Some("That is not the access token.")),
        )
            .into_response();
    }
    let path = if ui.options().base_path.is_empty() {
        "/".to_string()
    } else {
        ui.options().base_path.clone()
    };
    let cookie = format!(
        "{LOGIN_COOKIE}={}; Path={path}; HttpOnly; SameSite=Strict",
        login_value(token)
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&ui.href("/runs")),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; reprise_csrf=abc; b=2"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&headers, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }

    #[test]
    fn without_a_token_only_requests_for_this_machine_are_answered() {
        let host = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, value.parse().unwrap());
            names_this_machine(&headers)
        };
        for ok in [
            "localhost:8233",
            "127.0.0.1:8233",
            "127.0.0.1",
            "[::1]:8233",
            "LOCALHOST",
        ] {
            assert!(host(ok), "{ok}");
        }
        for refused in [
            "attacker.example:8233",
            "evil.localhost.example",
            "10.0.0.5:8233",
            "[fe80::1]:80",
        ] {
            assert!(!host(refused), "{refused}");
        }
        assert!(!names_this_machine(&HeaderMap::new()));
    }

    #[test]
    fn only_tokens_this_ui_writes_are_kept() {
        assert!(well_formed(&uuid::Uuid::new_v4().simple().to_string()));
        assert!(!well_formed("short"));
        assert!(!well_formed("zz000000000000000000000000000000"));
    }

    #[test]
    fn the_login_cookie_is_not_the_token() {
        assert_ne!(login_value("secret"), "secret");
        assert_eq!(login_value("secret"), login_value("secret"));
        assert_ne!(login_value("secret"), login_value("secret2"));
    }
}
