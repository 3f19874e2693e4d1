//! Graceful shutdown. Kubernetes stops a pod with SIGTERM and a terminal
//! with Ctrl-C (SIGINT); either must let the servers stop accepting and
//! drain in-flight requests, then exit 0, instead of dying mid-response.
//!
//! [`signal`] is the future a single server hands to its graceful-shutdown
//! hook. A process with several listeners (HTTP and gRPC) uses
//! [`on_signal`], whose [`Shutdown`] gives each listener its own
//! [`Shutdown::wait`] future from one signal.

use tokio::sync::watch;

/// Resolves on the first SIGINT or SIGTERM, logging "shutting down".
///
/// The signal handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives in between is not
/// lost (or, for SIGTERM, fatal).
///
/// # Panics
///
/// Outside a Tokio runtime, like `tokio::spawn`.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let received = |name: &'static str, s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
                name
            };
            let name = tokio::select! {
                name = received("SIGINT", interrupt) => name,
                name = received("SIGTERM", terminate) => name,
            };
            tracing::info!(signal = name, "shutting down: draining in-flight requests");
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "Ctrl-C", "shutting down: draining in-flight requests");
    }
}

/// A [`Shutdown`] triggered by [`signal`], for a process whose several
/// listeners must all stop on one SIGINT/SIGTERM.
///
/// # Panics
///
/// Outside a Tokio runtime: it spawns the task that waits for the signal.
pub fn on_signal() -> Shutdown {
    let (trigger, shutdown) = channel();
    let signalled = signal();
    tokio::spawn(async move {
        signalled.await;
        trigger.fire();
    });
    shutdown
}

/// A [`Trigger`] and the [`Shutdown`] it fires.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

/// Fires its [`Shutdown`]. Dropping it fires too, so no listener waits on
/// a trigger that no longer exists.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

impl Trigger {
    /// Resolves every [`Shutdown::wait`], current and future.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

/// The receiving side: clone it freely; every clone sees the same trigger.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A future that resolves once the trigger fires (or is dropped), for a
    /// server's graceful-shutdown hook.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            // Err: the trigger is gone, which counts as fired.
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }

    /// Whether the trigger has fired (or been dropped).
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SOON: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn one_trigger_stops_every_waiter() {
        let (trigger, shutdown) = channel();
        let a = tokio::spawn(shutdown.wait());
        let b = tokio::spawn(shutdown.clone().wait());
        tokio::task::yield_now().await;
        assert!(!shutdown.is_triggered());
        assert!(!a.is_finished() && !b.is_finished());
        trigger.fire();
        tokio::time::timeout(SOON, a).await.expect("a stops").expect("a");
        tokio::time::timeout(SOON, b).await.expect("b stops").expect("b");
        assert!(shutdown.is_triggered());
        // A waiter created after the trigger fired resolves at once.
        tokio::time::timeout(SOON, shutdown.wait())
            .await
            .expect("late waiter stops");
    }

    #[tokio::test]
    async fn dropping_the_trigger_stops_the_waiters() {
        let (trigger, shutdown) = channel();
        let waiter = tokio::spawn(shutdown.wait());
        drop(trigger);
        tokio::time::timeout(SOON, waiter)
            .await
            .expect("stops")
            .expect("waiter");
        assert!(shutdown.is_triggered());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_resolves_the_signal_future() {
        let shutdown = on_signal();
        // The handlers are installed when on_signal returns, so the signal
        // cannot kill the test process.
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        tokio::time::timeout(SOON, shutdown.wait())
            .await
            .expect("SIGTERM stops");
        assert!(shutdown.is_triggered());
    }
}
