//! A TCP proxy a test puts between a server and a shared service, to
//! simulate an outage of that service without stopping it: other tests
//! run against the same PostgreSQL and Redis at the same time.
//!
//! [`TcpProxy::cut`] behaves like a network partition, the harder case for
//! a client: open connections are closed, and new connections are accepted
//! but never answered (a connect or query hangs until the client's own
//! timeout). [`TcpProxy::restore`] closes the held connections and forwards
//! again.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A forwarding proxy on `127.0.0.1:<free port>`; stops (closing every
/// connection) when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Forward to `target` (`host:port`). Panics if no local port can be bound.
    pub async fn start(target: impl Into<String>) -> Self {
        let target = target.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy port");
        let addr = listener.local_addr().expect("the proxy's address");
        let (cut, _) = watch::channel(false);
        let states = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(pipe(client, target.clone(), states.subscribe()));
            }
        });
        Self { addr, cut, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Close every open connection; hold new ones silent until [`Self::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forward again; connections held during the cut are closed.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Wakes every connection task: a closed channel ends it.
        self.cut.send_replace(true);
    }
}

async fn pipe(mut client: TcpStream, target: String, mut cut: watch::Receiver<bool>) {
    if *cut.borrow_and_update() {
        // Partitioned: say nothing until the cut ends, then hang up.
        let _ = cut.wait_for(|c| !*c).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = cut.wait_for(|c| *c) => {}
    }
}
