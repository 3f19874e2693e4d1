//! Error responses in the shapes Feast 0.67's server and SDK use
//! (feast-compat.md §7): Feast errors as a JSON string holding JSON (so the
//! SDK re-raises the exact exception class), other failures as a JSON
//! string of the message, body validation as FastAPI's `{"detail": [...]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// A Feast exception class the SDK can re-raise.
    Feast {
        status: StatusCode,
        class: &'static str,
        message: String,
    },
    /// Any other failure: the body is the message as a JSON string.
    Message { status: StatusCode, message: String },
    /// 401: no or invalid credentials (FastAPI's `{"detail": ...}` shape,
    /// with `WWW-Authenticate: Bearer`).
    Unauthenticated(String),
    /// Request body validation (FastAPI's 422 shape).
    Validation {
        kind: &'static str,
        loc: Vec<String>,
        message: String,
    },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Message {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn validation(kind: &'static str, loc: &[&str], message: impl Into<String>) -> Self {
        ApiError::Validation {
            kind,
            loc: std::iter::once("body")
                .chain(loc.iter().copied())
                .map(String::from)
                .collect(),
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Message {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// 503: a dependency is unreachable for now; the same request may
    /// succeed later (clients and load balancers retry 503s, not 500s).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Message {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Feast { status, .. } | ApiError::Message { status, .. } => *status,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<larder_serving::ServeError> for ApiError {
    fn from(e: larder_serving::ServeError) -> Self {
        use larder_serving::ServeError as E;
        let message = e.to_string();
        match e {
            E::FeatureViewNotFound { .. } => ApiError::Feast {
                status: StatusCode::NOT_FOUND,
                class: "FeatureViewNotFoundException",
                message,
            },
            E::FeatureServiceNotFound { .. } => ApiError::Feast {
                status: StatusCode::NOT_FOUND,
                class: "FeatureServiceNotFoundException",
                message,
            },
            E::Online(ref o) if o.is_retryable() => ApiError::unavailable(message),
            E::Registry(_) | E::Online(_) => ApiError::internal(message),
            _ => ApiError::bad_request(message),
        }
    }
}

/// Auth outcomes in Feast's terms: 401 (Feast's wording first), 403 with
/// Feast's `FeastPermissionError` (the SDK re-raises it), 503 when the
/// authority cannot be asked (never a pass), 500 for a Permission that
/// cannot be enforced.
impl From<larder_auth::AuthError> for ApiError {
    fn from(e: larder_auth::AuthError) -> Self {
        use larder_auth::AuthError as A;
        match e {
            A::Unauthenticated(m) if m.starts_with("missing") => {
                ApiError::Unauthenticated("Missing authentication token".into())
            }
            A::Unauthenticated(m) => ApiError::Unauthenticated(format!("Invalid or expired access token ({m})")),
            A::Denied(d) => ApiError::Feast {
                status: StatusCode::FORBIDDEN,
                class: "FeastPermissionError",
                message: format!("Permission error:\n{}", d.0),
            },
            A::Unavailable(m) => ApiError::unavailable(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// A registry that cannot be read: the request cannot be served (500).
impl From<larder_registry::RegistryError> for ApiError {
    fn from(e: larder_registry::RegistryError) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// An online store that was unreachable (or lost its connection twice) is a
/// 503: the request, a write included, is safe to repeat.
impl From<larder_online::OnlineError> for ApiError {
    fn from(e: larder_online::OnlineError) -> Self {
        if e.is_retryable() {
            ApiError::unavailable(e.to_string())
        } else {
            ApiError::internal(e.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self {
            ApiError::Feast { class, message, .. } => {
                let inner = larder_model::feast::error_detail(class, &message);
                serde_json::Value::String(inner).to_string()
            }
            ApiError::Message { message, .. } => serde_json::Value::String(message).to_string(),
            ApiError::Validation { kind, loc, message } => {
                json!({"detail": [{"type": kind, "loc": loc, "msg": message}]}).to_string()
            }
            ApiError::Unauthenticated(message) => {
                let body = json!({ "detail": message }).to_string();
                return (
                    status,
                    [
                        (axum::http::header::CONTENT_TYPE, "application/json"),
                        (axum::http::header::WWW_AUTHENTICATE, "Bearer"),
                    ],
                    body,
                )
                    .into_response();
            }
        };
        (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn feast_errors_are_double_encoded() {
        let r = ApiError::Feast {
            status: StatusCode::NOT_FOUND,
            class: "FeatureViewNotFoundException",
            message: "Feature view nope does not exist in project demo".into(),
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let outer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let inner: serde_json::Value = serde_json::from_str(outer.as_str().unwrap()).unwrap();
        assert_eq!(inner["class"], "FeatureViewNotFoundException");
        assert_eq!(inner["module"], "feast.errors");
    }

    #[test]
    fn unreachable_online_store_is_503() {
        use larder_online::{OnlineError, Operation};
        let gone = || OnlineError::Unavailable {
            store: "redis",
            address: "127.0.0.1:6379".into(),
            operation: Operation::Write,
            source: Box::new(OnlineError::Config("connection refused".into())),
        };
        assert_eq!(ApiError::from(gone()).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            ApiError::from(larder_serving::ServeError::Online(gone())).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let broken = || OnlineError::Config("bad".into());
        assert_eq!(ApiError::from(broken()).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            ApiError::from(larder_serving::ServeError::Online(broken())).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
