//! Retrying the transient failures that concurrent registry writers cause.

use std::time::Duration;

use tracing::debug;

use crate::{RegistryError, Result};

/// Attempts before a transient failure is returned.
const MAX_ATTEMPTS: u32 = 30;

/// Run `op` until it succeeds, fails for good, or the attempts run out;
/// waits grow exponentially (5 ms … 320 ms) with jitter.
pub(super) async fn retrying<T, F, Fut>(what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(RegistryError::Database(e)) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                attempt += 1;
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
                let wait = (5u64 << attempt.min(6)) + jitter;
                debug!(error = %e, attempt, what, "retrying transient registry conflict");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            other => return other,
        }
    }
}

/// Failures another attempt can fix: deadlocks, serialization failures,
/// lost insert races and busy SQLite databases.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation) {
                return true;
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = db.message().to_ascii_lowercase();
            matches!(code.as_str(), "40001" | "40P01" | "5" | "6" | "261" | "517")
                || msg.contains("deadlock")
                || msg.contains("lock wait timeout")
                || msg.contains("database is locked")
        }
        sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}
