//! `POST /hooks/git`: a git host announces a push, and the store checks the remote now instead of at
//! the next poll.
//!
//! - **Authentication.** A shared secret, in the format of the sender:
//!   - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`;
//!   - Gitea and Forgejo: `X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>`;
//!   - GitLab: `X-Gitlab-Token: <secret>`, compared in constant time.
//!
//!   At least one of these headers must be present and every one present must verify; otherwise the
//!   answer is 401 Unauthorized and nothing is triggered. Signatures are compared with
//!   [`Mac::verify_slice`], in constant time.
//! - **Answer.** 200 (a Kubernetes `Status` Success) once the store reflects the remote; 202 when the
//!   sync takes longer than [`WAIT`] (it continues in the sync loop); 503 when the remote could not be
//!   read. The sync runs in the sync loop, so other requests are served meanwhile, and a sender that
//!   disconnects does not cancel it.
//! - **Not configured.** Without a secret the endpoint is not served: 404, as for any unknown path.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::response::Response;
use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use tracing::{debug, warn};

use super::{AppState, error_response, json_response, read_body};
use gitbacked_core::status::StatusError;

/// Where the endpoint is served.
pub const PATH: &str = "/hooks/git";

/// How long a request waits for the sync before the answer is 202 Accepted: below the 10 s after
/// which GitHub and GitLab give up on a delivery.
pub const WAIT: Duration = Duration::from_secs(8);

type HmacSha256 = Hmac<Sha256>;

const GITHUB: &str = "x-hub-signature-256";
const GITEA: &str = "x-gitea-signature";
const GITLAB: &str = "x-gitlab-token";

/// Why a triggered sync failed.
pub type SyncFailure = Box<dyn std::error::Error + Send + Sync>;

/// Starts a sync with the remote; resolves once the store reflects it.
pub type Trigger = Arc<dyn Fn() -> BoxFuture<'static, Result<(), SyncFailure>> + Send + Sync>;

/// The webhook endpoint's configuration: the shared secret and what triggers a sync.
#[derive(Clone, Default)]
pub struct Webhook {
    enabled: Option<Arc<Enabled>>,
}

struct Enabled {
    secret: Vec<u8>,
    trigger: Trigger,
    wait: Duration,
}

impl Webhook {
    /// The endpoint verifying requests with `secret` and calling `trigger` for authentic ones; not
    /// served (404) without a secret.
    pub fn new<F, Fut, E>(secret: Option<&str>, trigger: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<SyncFailure>,
    {
        let enabled = secret.map(|secret| {
            let trigger: Trigger = Arc::new(move || trigger().map(|r| r.map_err(Into::into)).boxed());
            Arc::new(Enabled { secret: secret.as_bytes().to_vec(), trigger, wait: WAIT })
        });
        Webhook { enabled }
    }

    /// The endpoint answering 404: no secret is configured.
    pub fn disabled() -> Self {
        Webhook::default()
    }

    /// Waits at most `wait` for the sync before answering 202 (default [`WAIT`]).
    pub fn with_wait(self, wait: Duration) -> Self {
        let enabled =
            self.enabled.map(|e| Arc::new(Enabled { secret: e.secret.clone(), trigger: e.trigger.clone(), wait }));
        Webhook { enabled }
    }

    /// Answers one request to [`PATH`].
    pub async fn receive(&self, req: Request) -> Response {
        let Some(enabled) = &self.enabled else {
            return error_response(&StatusError::no_route(PATH));
        };
        if req.method() != Method::POST {
            return error_response(&StatusError::method_not_allowed(format!(
                "{} is not supported on {PATH}",
                req.method()
            )));
        }
        let (parts, body) = req.into_parts();
        // Requests without any signature are turned away before their body is read.
        let proofs = match proofs(&parts.headers) {
            Ok(proofs) => proofs,
            Err(why) => return unauthorized(why),
        };
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(e) => return error_response(&e),
        };
        let sender = match verify(&enabled.secret, &body, &proofs) {
            Ok(sender) => sender,
            Err(why) => return unauthorized(why),
        };
        debug!(sender = sender.name(), "webhook: syncing with the remote");
        // Spawned: the sync goes on when the sender gives up waiting or disconnects.
        let sync = tokio::spawn((enabled.trigger)());
        match tokio::time::timeout(enabled.wait, sync).await {
            Ok(Ok(Ok(()))) => success(200, "the store is up to date with the remote"),
            Ok(Ok(Err(e))) => {
                warn!(error = %e, "webhook: the sync with the remote failed");
                error_response(&StatusError::unavailable(
                    "the sync with the remote failed; the last synced state is served (see the server's log)",
                ))
            }
            Ok(Err(e)) => error_response(&StatusError::internal(format!("the sync task failed: {e}"))),
            Err(_) => success(202, "the sync with the remote continues in the background"),
        }
    }
}

/// The route's handler: [`Webhook::receive`], counted in the request metrics.
pub(super) async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let response = state.webhook.receive(req).await;
    state.metrics.request("webhook", "", response.status().as_u16(), started.elapsed());
    response
}

/// A webhook secret that is blank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("webhook_secret is empty")]
pub struct EmptySecret;

/// Checks a secret given as an option: it must not be blank.
pub fn check_secret(secret: Option<&str>) -> Result<(), EmptySecret> {
    match secret {
        Some(s) if s.trim().is_empty() => Err(EmptySecret),
        _ => Ok(()),
    }
}

fn unauthorized(why: Rejected) -> Response {
    warn!(reason = why.0, "webhook: request rejected");
    error_response(&StatusError::unauthorized())
}

fn success(code: u16, message: &str) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "message": message, "code": code}),
    )
}

/// Who sent a request, by the header that authenticated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// `X-Hub-Signature-256`.
    GitHub,
    /// `X-Gitea-Signature`.
    Gitea,
    /// `X-Gitlab-Token`.
    GitLab,
}

impl Sender {
    fn name(self) -> &'static str {
        match self {
            Sender::GitHub => "github",
            Sender::Gitea => "gitea",
            Sender::GitLab => "gitlab",
        }
    }
}

/// Why a request is not authentic (for the server's log; the sender only gets 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected(pub &'static str);

/// What a request presents as proof of the secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Proof {
    /// An HMAC-SHA256 of the body (GitHub, Gitea).
    Signature(Sender, Vec<u8>),
    /// The secret itself (GitLab).
    Token(Vec<u8>),
}

/// Reads the proofs a request carries. None, a malformed one or a repeated header is a rejection.
pub fn proofs(headers: &HeaderMap) -> Result<Vec<Proof>, Rejected> {
    let mut proofs = Vec::new();
    if let Some(value) = single(headers, GITHUB)? {
        let hex = value.strip_prefix(b"sha256=").ok_or(Rejected("X-Hub-Signature-256 does not start with sha256="))?;
        let mac = decode_mac(hex).ok_or(Rejected("X-Hub-Signature-256 is not 64 hexadecimal digits"))?;
        proofs.push(Proof::Signature(Sender::GitHub, mac));
    }
    if let Some(value) = single(headers, GITEA)? {
        let mac = decode_mac(value).ok_or(Rejected("X-Gitea-Signature is not 64 hexadecimal digits"))?;
        proofs.push(Proof::Signature(Sender::Gitea, mac));
    }
    if let Some(value) = single(headers, GITLAB)? {
        if value.is_empty() {
            return Err(Rejected("X-Gitlab-Token is empty"));
        }
        proofs.push(Proof::Token(value.to_vec()));
    }
    if proofs.is_empty() {
        return Err(Rejected("no X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token header"));
    }
    Ok(proofs)
}

/// Checks every proof against the secret and the body; returns the sender of the first one.
pub fn verify(secret: &[u8], body: &[u8], proofs: &[Proof]) -> Result<Sender, Rejected> {
    if secret.is_empty() {
        return Err(Rejected("the secret is empty"));
    }
    let mut sender = None;
    for proof in proofs {
        let (who, ok) = match proof {
            Proof::Signature(who, mac) => (*who, hmac_sha256(secret, body).verify_slice(mac).is_ok()),
            Proof::Token(token) => (Sender::GitLab, same_secret(secret, token)),
        };
        if !ok {
            return Err(Rejected(match who {
                Sender::GitHub => "X-Hub-Signature-256 does not match the body and the secret",
                Sender::Gitea => "X-Gitea-Signature does not match the body and the secret",
                Sender::GitLab => "X-Gitlab-Token is not the secret",
            }));
        }
        sender.get_or_insert(who);
    }
    sender.ok_or(Rejected("no proof of the secret"))
}

/// Both steps: the headers' proofs, checked against the secret and the body.
pub fn authenticate(headers: &HeaderMap, secret: &[u8], body: &[u8]) -> Result<Sender, Rejected> {
    verify(secret, body, &proofs(headers)?)
}

/// The lowercase hex HMAC-SHA256 of `body` under `secret`: what GitHub and Gitea send.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    hmac_sha256(secret, body).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// An HMAC-SHA256 state keyed with `key` that has read `data`.
fn hmac_sha256(key: &[u8], data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac
}

/// Compares a token with the secret in time independent of where they differ and of their lengths:
/// both go through HMAC under a fixed key, and the results are compared in constant time.
fn same_secret(secret: &[u8], token: &[u8]) -> bool {
    const KEY: &[u8] = b"gitbacked: X-Gitlab-Token comparison";
    let expected = hmac_sha256(KEY, secret).finalize().into_bytes();
    hmac_sha256(KEY, token).verify_slice(&expected).is_ok()
}

/// The one value of a header, trimmed; a repeated header is a rejection.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a [u8]>, Rejected> {
    let mut values = headers.get_all(HeaderName::from_static(name)).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Rejected("a signature header is repeated"));
    }
    Ok(first.map(|v| v.as_bytes().trim_ascii()))
}

/// A 32-byte MAC from 64 hexadecimal digits (either case).
fn decode_mac(hex: &[u8]) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    if hex.len() != 64 {
        return None;
    }
    hex.chunks(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn hmac_sha256_known_answers() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231, test case 1.
        assert_eq!(
            signature(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn github_documented_example() {
        // docs.github.com, "Validating webhook deliveries": test values for an implementation.
        let secret = b"It's a Secret to Everybody";
        let sent = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(authenticate(&sent, secret, b"Hello, World!"), Ok(Sender::GitHub));
        assert!(authenticate(&sent, secret, b"Hello, World?").is_err());
        assert!(authenticate(&sent, b"It's a secret to everybody", b"Hello, World!").is_err());
    }

    #[test]
    fn gitea_signs_without_a_prefix() {
        let (secret, body) = (b"s3cret".as_slice(), br#"{"ref":"refs/heads/main"}"#.as_slice());
        let sig = signature(secret, body);
        assert_eq!(authenticate(&headers(&[("x-gitea-signature", &sig)]), secret, body), Ok(Sender::Gitea));
        // Hex digits in either case.
        let upper = sig.to_ascii_uppercase();
        assert_eq!(authenticate(&headers(&[("x-gitea-signature", &upper)]), secret, body), Ok(Sender::Gitea));
        assert!(authenticate(&headers(&[("x-gitea-signature", &sig)]), b"other", body).is_err());
        // The GitHub form is not the Gitea form, and the other way round.
        assert!(authenticate(&headers(&[("x-gitea-signature", &format!("sha256={sig}"))]), secret, body).is_err());
        assert!(authenticate(&headers(&[("x-hub-signature-256", &sig)]), secret, body).is_err());
    }

    #[test]
    fn gitlab_sends_the_secret() {
        let secret = b"s3cret";
        assert_eq!(authenticate(&headers(&[("x-gitlab-token", "s3cret")]), secret, b"{}"), Ok(Sender::GitLab));
        assert_eq!(authenticate(&headers(&[("x-gitlab-token", " s3cret ")]), secret, b"{}"), Ok(Sender::GitLab));
        for wrong in ["s3creT", "s3cre", "s3crett", "x"] {
            assert!(authenticate(&headers(&[("x-gitlab-token", wrong)]), secret, b"{}").is_err(), "{wrong}");
        }
        assert!(authenticate(&headers(&[("x-gitlab-token", "")]), secret, b"{}").is_err());
        assert!(same_secret(b"abc", b"abc") && !same_secret(b"abc", b"abd") && !same_secret(b"abc", b"ab"));
    }

    #[test]
    fn missing_and_malformed_headers_are_rejected() {
        let (secret, body) = (b"s3cret".as_slice(), b"{}".as_slice());
        let sig = signature(secret, body);
        let rejected = |pairs: &[(&'static str, &str)]| authenticate(&headers(pairs), secret, body).is_err();
        assert!(rejected(&[]));
        assert!(rejected(&[("x-hub-signature", &format!("sha1={sig}"))]), "SHA-1 signatures are not accepted");
        assert!(rejected(&[("x-hub-signature-256", &format!("sha1={sig}"))]));
        assert!(rejected(&[("x-hub-signature-256", "sha256=")]));
        assert!(rejected(&[("x-hub-signature-256", &format!("sha256={}", &sig[..62]))]));
        assert!(rejected(&[("x-hub-signature-256", &format!("sha256={sig}00"))]));
        assert!(rejected(&[("x-hub-signature-256", &format!("sha256={}zz", &sig[..62]))]));
        assert!(rejected(&[("x-gitea-signature", "")]));
        // A repeated header, even with one good value.
        assert!(rejected(&[("x-hub-signature-256", &format!("sha256={sig}")), ("x-hub-signature-256", "sha256=00")]));
        // Every header present must verify.
        assert!(rejected(&[("x-hub-signature-256", &format!("sha256={sig}")), ("x-gitlab-token", "wrong")]));
        let both = headers(&[("x-hub-signature-256", &format!("sha256={sig}")), ("x-gitea-signature", &sig)]);
        assert_eq!(authenticate(&both, secret, body), Ok(Sender::GitHub));
        // An empty secret verifies nothing, not even its own signature.
        let empty = signature(b"", body);
        assert!(authenticate(&headers(&[("x-gitea-signature", &empty)]), b"", body).is_err());
        assert_eq!(check_secret(Some(" \n")), Err(EmptySecret));
        assert_eq!(check_secret(None), Ok(()));
    }

    /// A webhook whose trigger counts its calls and answers `result` after `delay`.
    fn counting(delay: Duration, result: Result<(), &'static str>) -> (Webhook, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let webhook = Webhook::new(Some("s3cret"), move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(delay).await;
                result
            }
        });
        (webhook, calls)
    }

    fn request(method: Method, pairs: &[(&'static str, &str)], body: impl Into<String>) -> Request {
        let mut req = Request::builder().method(method).uri(PATH).body(Body::from(body.into())).unwrap();
        req.headers_mut().extend(headers(pairs));
        req
    }

    async fn answer(webhook: &Webhook, req: Request) -> (StatusCode, Value) {
        let response = webhook.receive(req).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn answers() {
        let body = r#"{"ref":"refs/heads/main"}"#;
        let good = format!("sha256={}", signature(b"s3cret", body.as_bytes()));

        let (webhook, calls) = counting(Duration::ZERO, Ok(()));
        let (code, status) = answer(&webhook, request(Method::POST, &[("x-hub-signature-256", &good)], body)).await;
        assert_eq!((code, &status["status"]), (StatusCode::OK, &json!("Success")));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        for pairs in [&[("x-hub-signature-256", "sha256=00")][..], &[], &[("x-gitlab-token", "nope")]] {
            let (code, status) = answer(&webhook, request(Method::POST, pairs, body)).await;
            assert_eq!((code, &status["reason"]), (StatusCode::UNAUTHORIZED, &json!("Unauthorized")));
        }
        let (code, _) = answer(&webhook, request(Method::GET, &[("x-hub-signature-256", &good)], body)).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "nothing triggered");

        // Not configured: not served.
        let (code, status) =
            answer(&Webhook::disabled(), request(Method::POST, &[("x-hub-signature-256", &good)], body)).await;
        assert_eq!((code, &status["reason"]), (StatusCode::NOT_FOUND, &json!("NotFound")));

        // A slow sync: 202, and the sync goes on.
        let (webhook, calls) = counting(Duration::from_secs(3600), Ok(()));
        let webhook = webhook.with_wait(Duration::from_millis(50));
        let (code, _) = answer(&webhook, request(Method::POST, &[("x-gitlab-token", "s3cret")], body)).await;
        assert_eq!((code, calls.load(Ordering::SeqCst)), (StatusCode::ACCEPTED, 1));

        // A failed sync: 503, without the error's details.
        let (webhook, _) = counting(Duration::ZERO, Err("https://user:pw@host: unreachable"));
        let (code, status) = answer(&webhook, request(Method::POST, &[("x-hub-signature-256", &good)], body)).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!status.to_string().contains("pw@"));

        // Bodies above the limit are refused.
        let (webhook, calls) = counting(Duration::ZERO, Ok(()));
        let big = "x".repeat(super::super::MAX_BODY + 1);
        let (code, _) = answer(&webhook, request(Method::POST, &[("x-gitlab-token", "s3cret")], big)).await;
        assert_eq!((code, calls.load(Ordering::SeqCst)), (StatusCode::PAYLOAD_TOO_LARGE, 0));
    }
}
