//! The HTTP endpoints, one module per group (as Feast's Go server splits
//! `http_server.go`); the router is in [`crate::router`].

pub mod materialize;
pub mod online;
pub mod ops;
pub mod write;
