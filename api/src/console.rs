//! The web console at `/console`: the files `api/build_console.rs` bundled into the binary, served
//! with a strict Content-Security-Policy. The console is a client of the public API and nothing
//! else; it has no route, credential or data of its own.

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

mod files {
    include!(concat!(env!("OUT_DIR"), "/console_files.rs"));
}

/// Where the console lives.
pub const PATH: &str = "/console/";

/// The console's routes; `connect_sources` are the origins besides the API's own that the page
/// may call (an OIDC provider's token endpoint).
pub fn routes<S: Clone + Send + Sync + 'static>(connect_sources: &[String]) -> Router<S> {
    let policy = content_security_policy(connect_sources);
    Router::new()
        .route("/console", get(|| async { Redirect::permanent(PATH) }))
        .route(
            PATH,
            get(|headers: HeaderMap| async move { file("index.html", &headers) }),
        )
        .route(
            "/console/{name}",
            get(|Path(name): Path<String>, headers: HeaderMap| async move { file(&name, &headers) }),
        )
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let policy = policy.clone();
            async move { with_security_headers(next.run(request).await, &policy) }
        }))
}

/// Scripts, styles and calls from the API's origin only; no inline script or style, no framing,
/// no plugins, no form posts elsewhere.
fn content_security_policy(connect_sources: &[String]) -> HeaderValue {
    let connect = std::iter::once("'self'".to_owned())
        .chain(connect_sources.iter().filter(|origin| is_origin(origin)).cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src {connect}; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// `https://host[:port]` (or `http://` for a provider on this machine), nothing a header could be
/// bent with.
fn is_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|url| {
        matches!(url.scheme(), "https" | "http")
            && url.path() == "/"
            && url.query().is_none()
            && url.origin().ascii_serialization() == origin
    })
}

fn with_security_headers(mut response: Response, policy: &HeaderValue) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    response
}

/// Each file's `ETag`, computed once: the files never change while the binary runs.
static ETAGS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    files::FILES
        .iter()
        .map(|(_, body)| format!("\"{}\"", &sealtrail_core::digest::to_hex(&Sha256::digest(body))[..32]))
        .collect()
});

/// One of the console's files, with an `ETag` of its content: the browser asks again each time
/// (a new binary may serve a new console) and gets 304 while it is the same.
fn file(name: &str, headers: &HeaderMap) -> Response {
    let Some(index) = files::FILES.iter().position(|(file, _)| *file == name) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let (_, body) = files::FILES[index];
    let etag = &ETAGS[index];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == etag)
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let content_type = match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let mut response = body.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(etag) = HeaderValue::from_str(etag) {
        response_headers.insert(header::ETAG, etag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_origins_reach_the_policy() {
        let policy = content_security_policy(&[
            "https://idp.example".to_owned(),
            "https://idp.example/path".to_owned(),
            "https://evil.example; script-src *".to_owned(),
        ]);
        let policy = policy.to_str().expect("ASCII");
        assert!(policy.contains("connect-src 'self' https://idp.example;"), "{policy}");
        assert!(!policy.contains("evil"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }

    #[test]
    fn the_index_is_embedded() {
        assert!(files::FILES.iter().any(|(name, _)| *name == "index.html"));
    }
}
