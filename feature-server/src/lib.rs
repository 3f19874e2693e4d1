//! Larder's feature server: Feast 0.67's HTTP serving API
//! (feast-compat.md §7) over the Larder registry (read through the TTL
//! cache) and any online store.
//!
//! Feature references are resolved once per registry version (a plan
//! cache), every view of a request is read with one batched call and views
//! are read concurrently, and the response is written straight to bytes.

pub mod api;
pub mod authz;
pub mod convert;
pub mod docs;
pub mod encode;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod request;
pub mod router;
pub mod run;
pub mod state;
pub mod tls;

pub use router::{router, serve, serve_tls};
pub use state::{AppState, Limits, PLAN_CACHE_CAPACITY};
