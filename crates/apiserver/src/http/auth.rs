//! Authentication as a layer: a static bearer token, as kube-apiserver's token authenticator
//! checks it. Health endpoints and the git hosts' webhook (whose signature authenticates it) need
//! no token, as kube-apiserver's health endpoints need none.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use gitbacked_core::StatusError;

use super::{error_response, webhook};

/// The paths anyone may ask.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz") || path == webhook::PATH
}

/// The token a request carries in `Authorization: Bearer <token>`; the scheme is case-insensitive
/// (RFC 7235).
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares tokens in time independent of where they differ.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn check(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    let allowed = is_open(req.uri().path()) || bearer(&req).is_some_and(|t| same_token(t.as_bytes(), token.as_bytes()));
    if allowed { next.run(req).await } else { error_response(&StatusError::unauthorized()) }
}

/// `router` behind the bearer token `token`: any other request is 401 Unauthorized.
pub fn require_bearer_token(router: Router, token: &str) -> Router {
    router.layer(middleware::from_fn_with_state(Arc::<str>::from(token), check))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn code(app: &Router, path: &str, authorization: Option<&str>) -> u16 {
        let mut req = Request::post(path).body(Body::empty()).unwrap();
        if let Some(value) = authorization {
            req.headers_mut().insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        app.clone().oneshot(req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn a_bearer_token_guards_all_but_health_and_the_webhook() {
        let app = require_bearer_token(Router::new().fallback(|| async { "reached" }), "t0k");
        for path in ["/healthz", "/livez", "/readyz", webhook::PATH] {
            assert_eq!(code(&app, path, None).await, 200, "{path}");
        }
        for bad in [None, Some("Bearer wrong"), Some("Bearer "), Some("t0k"), Some("Basic dDBr"), Some("Bearer t0kk")] {
            assert_eq!(code(&app, "/api/v1/pods", bad).await, 401, "{bad:?}");
        }
        assert_eq!(code(&app, "/hooks/git/other", None).await, 401);
        for good in ["Bearer t0k", "bearer t0k", "BEARER  t0k"] {
            assert_eq!(code(&app, "/api/v1/pods", Some(good)).await, 200, "{good:?}");
        }
    }
}
