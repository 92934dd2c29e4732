//! Service account tokens, as kube-apiserver issues and reviews them: `serviceaccounts/{name}/token`
//! (TokenRequest) mints a JWT for the service account, and a TokenReview says whom a token stands
//! for. Neither is stored: both are answers, not objects.
//!
//! Tokens are signed (HS256) with a key each process draws at random when it starts: a token is
//! reviewed by the process that issued it, and none survives a restart. They grant nothing here
//! (the API is guarded by its own bearer token, see `http::auth`); they exist for clients that
//! request and review them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Api, Reply, Target};
use gitbacked_core::{ApiResult, StatusError};

/// The audience of a token requested without one, as kube-apiserver's default issuer.
const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// A token's lifetime when the request names none (kube-apiserver's default, one hour).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime kube-apiserver grants (ten minutes).
const MIN_EXPIRATION_SECONDS: i64 = 600;

/// Why a token is not accepted, as a TokenReview's `status.error`.
#[derive(Debug, thiserror::Error)]
enum TokenError {
    /// Not a token this process signed.
    #[error("invalid bearer token")]
    Invalid,
    /// Past its expiry.
    #[error("token has expired")]
    Expired,
    /// Not for any of the audiences asked about.
    #[error("token audiences do not match")]
    Audiences,
}

/// The key this process signs tokens with.
pub(super) struct TokenKey([u8; 32]);

impl TokenKey {
    /// A fresh random key.
    pub(super) fn random() -> Self {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&gitbacked_core::uid::random().to_le_bytes());
        }
        TokenKey(key)
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(data);
        mac
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

impl Api {
    /// POST `serviceaccounts/{name}/token`: a token for the service account, as a TokenRequest.
    pub async fn request_token(&self, target: &Target, name: &str, request: Value) -> ApiResult<Reply> {
        let account =
            self.storage.get(&target.key(name)).ok_or_else(|| StatusError::not_found(target.subject(name)))?;
        let spec = request.get("spec").cloned().unwrap_or_default();
        let audiences = match spec.get("audiences").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list.clone(),
            _ => vec![Value::from(DEFAULT_AUDIENCE)],
        };
        let lifetime = spec.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        if lifetime < MIN_EXPIRATION_SECONDS {
            return Err(StatusError::invalid_fields(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                &[gitbacked_core::FieldError::invalid(
                    "spec.expirationSeconds",
                    Value::from(lifetime),
                    "may not specify a duration less than 10 minutes",
                )],
            ));
        }
        let now = self.clock.now();
        let namespace = &account.key.namespace;
        let claims = json!({
            "iss": "gitbacked", "sub": format!("system:serviceaccount:{namespace}:{name}"), "aud": audiences,
            "iat": now, "nbf": now, "exp": now + lifetime,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": account.derived.uid}},
        });
        let signed = format!("{}.{}", encode(&json!({"alg": "HS256", "typ": "JWT"})), encode(&claims));
        let signature = URL_SAFE_NO_PAD.encode(self.token_key.mac(signed.as_bytes()).finalize().into_bytes());
        let expires = gitbacked_core::clock::rfc3339(now + lifetime);
        let mut answer = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
            "spec": spec, "status": {"token": format!("{signed}.{signature}"), "expirationTimestamp": expires}});
        answer["spec"]["audiences"] = Value::Array(audiences);
        answer["spec"]["expirationSeconds"] = Value::from(lifetime);
        Ok(Reply::json(201, &answer))
    }

    /// POST `tokenreviews`: whom a token stands for, if this process issued it and it is valid for
    /// one of the audiences asked about.
    pub(super) fn review_token(&self, review: Value) -> ApiResult<Reply> {
        let spec = review.get("spec").cloned().unwrap_or_default();
        let token = spec.get("token").and_then(Value::as_str).unwrap_or_default();
        let wanted: Vec<Value> = spec.get("audiences").and_then(Value::as_array).cloned().unwrap_or_default();
        let status = match self.verify(token, &wanted) {
            Ok((claims, audiences)) => {
                let namespace = claims.pointer("/kubernetes.io/namespace").cloned().unwrap_or_default();
                let ns = namespace.as_str().unwrap_or_default();
                json!({"authenticated": true, "audiences": audiences, "user": {
                    "username": claims.get("sub").cloned().unwrap_or_default(),
                    "uid": claims.pointer("/kubernetes.io/serviceaccount/uid").cloned().unwrap_or_default(),
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
                }})
            }
            Err(why) => json!({"authenticated": false, "error": why.to_string()}),
        };
        let answer = json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null}, "spec": spec, "status": status});
        Ok(Reply::json(201, &answer))
    }

    /// The claims of a token this process signed, still valid, and the audiences it is good for.
    fn verify(&self, token: &str, wanted: &[Value]) -> Result<(Value, Vec<Value>), TokenError> {
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
        self.token_key.mac(signed.as_bytes()).verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
        let (_, payload) = signed.split_once('.').ok_or(TokenError::Invalid)?;
        let claims: Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Invalid)?;
        if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp <= self.clock.now()) {
            return Err(TokenError::Expired);
        }
        let audiences: Vec<Value> = claims.get("aud").and_then(Value::as_array).cloned().unwrap_or_default();
        let granted: Vec<Value> = match wanted.is_empty() {
            true => audiences,
            false => wanted.iter().filter(|a| audiences.contains(a)).cloned().collect(),
        };
        if granted.is_empty() {
            return Err(TokenError::Audiences);
        }
        Ok((claims, granted))
    }
}
