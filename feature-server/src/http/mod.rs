//! The HTTP endpoints, one module per group (as Feast's Go server splits
//! `http_server.go`); the router is in [`crate::router`].

pub mod materialize;
pub mod online;
pub mod ops;
pub mod write;

/// Feast's answer when a write or materialization is done: the JSON `null`.
pub(crate) fn json_null() -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "application/json")], "null").into_response()
}
