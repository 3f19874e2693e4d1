//! A minimal RESP2 client for the Redis store's read path.
//!
//! A 100-key read is 100 `HMGET`s with 11 fields each. Through redis-rs the
//! reply is parsed by a generic parser combinator into a tree of owned
//! values (one allocation per field) and then converted again; that was a
//! third of the feature server's CPU time. Here the commands are written
//! into one buffer and the replies are parsed in place, each field handed to
//! the caller as a borrowed slice. Only plain TCP: TLS connections use
//! redis-rs.

use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Idle connections kept for reuse; more are opened under bursts and closed after.
const IDLE_CONNECTIONS: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("redis connection to {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("redis replied with an error: {0}")]
    Server(String),
    #[error("redis reply could not be parsed: {0}")]
    Protocol(String),
}

/// Sees each element of the array replies: (reply index, element index,
/// bytes or `None` for nil).
pub type OnField<'a> = dyn FnMut(usize, usize, Option<&[u8]>) -> Result<(), RespError> + Send + 'a;

/// Where and how to connect: Feast's `host:port,db=N,password=…,username=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: String,
    pub db: u32,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Append one command of `n` arguments in RESP (an array of bulk strings).
pub fn encode_command<'a>(buf: &mut Vec<u8>, n: usize, args: impl Iterator<Item = &'a [u8]>) {
    buf.push(b'*');
    push_usize(buf, n);
    buf.extend_from_slice(b"\r\n");
    let mut written = 0;
    for a in args {
        written += 1;
        buf.push(b'$');
        push_usize(buf, a.len());
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
    debug_assert_eq!(written, n, "argument count");
}

fn push_usize(buf: &mut Vec<u8>, n: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

struct Conn {
    stream: TcpStream,
    /// Bytes received and not yet parsed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
}

/// Where a line starting at `from` ends: (index of its `\r`, index after `\n`).
fn line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let nl = buf.get(from..)?.iter().position(|&b| b == b'\n')? + from;
    (nl > from && buf[nl - 1] == b'\r').then_some((nl - 1, nl + 1))
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn unexpected(line: &[u8], wanted: &str) -> RespError {
    if line.first() == Some(&b'-') {
        return RespError::Server(String::from_utf8_lossy(&line[1..]).into_owned());
    }
    RespError::Protocol(format!(
        "expected {wanted}, got {:?}",
        String::from_utf8_lossy(&line[..line.len().min(64)])
    ))
}

/// How far the parse of a batch of array replies has got.
struct Progress {
    reply: usize,
    /// Elements of the current array still to read (`None`: at a reply header).
    remaining: Option<usize>,
    element: usize,
    failure: Option<RespError>,
}

impl Conn {
    async fn open(ep: &Endpoint) -> Result<Self, RespError> {
        let io_err = |source| RespError::Io {
            addr: ep.addr.clone(),
            source,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&ep.addr))
            .await
            .map_err(|_| io_err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        let mut conn = Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
        };
        let mut setup = Vec::new();
        let mut replies = 0;
        if let Some(pw) = &ep.password {
            match &ep.username {
                Some(u) => encode_command(&mut setup, 3, [&b"AUTH"[..], u.as_bytes(), pw.as_bytes()].into_iter()),
                None => encode_command(&mut setup, 2, [&b"AUTH"[..], pw.as_bytes()].into_iter()),
            }
            replies += 1;
        }
        if ep.db != 0 {
            let db = ep.db.to_string();
            encode_command(&mut setup, 2, [&b"SELECT"[..], db.as_bytes()].into_iter());
            replies += 1;
        }
        if replies > 0 {
            conn.send(&setup, &ep.addr).await?;
            for _ in 0..replies {
                let line = conn.read_line(&ep.addr).await?;
                if line.first() != Some(&b'+') {
                    return Err(unexpected(&line, "+OK"));
                }
            }
        }
        Ok(conn)
    }

    async fn send(&mut self, bytes: &[u8], addr: &str) -> Result<(), RespError> {
        self.stream.write_all(bytes).await.map_err(|source| RespError::Io {
            addr: addr.to_string(),
            source,
        })
    }

    /// Receive more bytes, first dropping those already parsed.
    async fn fill(&mut self, addr: &str) -> Result<(), RespError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(32 * 1024);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|source| RespError::Io {
                addr: addr.to_string(),
                source,
            })?;
        if n == 0 {
            return Err(RespError::Io {
                addr: addr.to_string(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        Ok(())
    }

    /// One reply line, without its CRLF.
    async fn read_line(&mut self, addr: &str) -> Result<Vec<u8>, RespError> {
        loop {
            if let Some((cr, next)) = line_end(&self.buf, self.pos) {
                let line = self.buf[self.pos..cr].to_vec();
                self.pos = next;
                return Ok(line);
            }
            self.fill(addr).await?;
        }
    }

    /// Parse whatever complete elements the buffer holds.
    fn parse(&mut self, replies: usize, p: &mut Progress, field: &mut OnField<'_>) -> Result<(), RespError> {
        while p.reply < replies {
            let Some((cr, next)) = line_end(&self.buf, self.pos) else {
                return Ok(());
            };
            let line = &self.buf[self.pos..cr];
            match p.remaining {
                None => {
                    match line.first() {
                        // An error reply (WRONGTYPE…): remember the first, keep reading
                        // so the connection stays in step and can be reused.
                        Some(b'-') => {
                            p.failure.get_or_insert_with(|| unexpected(line, "an array"));
                            p.reply += 1;
                        }
                        Some(b'*') => {
                            let n = parse_int(&line[1..]).ok_or_else(|| unexpected(line, "an array"))?;
                            if n <= 0 {
                                p.reply += 1;
                            } else {
                                p.remaining = Some(n as usize);
                                p.element = 0;
                            }
                        }
                        _ => return Err(unexpected(line, "an array")),
                    }
                    self.pos = next;
                }
                Some(left) => {
                    if line.first() != Some(&b'$') {
                        return Err(unexpected(line, "a bulk string"));
                    }
                    let len = parse_int(&line[1..]).ok_or_else(|| unexpected(line, "a bulk string"))?;
                    let value = if len < 0 {
                        self.pos = next;
                        None
                    } else {
                        let end = next + len as usize;
                        if self.buf.len() < end + 2 {
                            return Ok(()); // the payload has not fully arrived
                        }
                        self.pos = end + 2;
                        Some(next..end)
                    };
                    if p.failure.is_none() {
                        field(p.reply, p.element, value.map(|r| &self.buf[r]))?;
                    }
                    p.element += 1;
                    if left == 1 {
                        p.remaining = None;
                        p.reply += 1;
                    } else {
                        p.remaining = Some(left - 1);
                    }
                }
            }
        }
        Ok(())
    }

    /// Send `commands`, then read their `replies` array replies.
    async fn exchange(
        &mut self,
        commands: &[u8],
        addr: &str,
        replies: usize,
        field: &mut OnField<'_>,
    ) -> Result<(), RespError> {
        self.send(commands, addr).await?;
        self.read_arrays(addr, replies, field).await
    }

    /// Read `replies` array replies; `field(reply, index, bytes)` sees every
    /// element (`None` for nil).
    async fn read_arrays(&mut self, addr: &str, replies: usize, field: &mut OnField<'_>) -> Result<(), RespError> {
        let mut p = Progress {
            reply: 0,
            remaining: None,
            element: 0,
            failure: None,
        };
        loop {
            self.parse(replies, &mut p, field)?;
            if p.reply == replies {
                return p.failure.map_or(Ok(()), Err);
            }
            self.fill(addr).await?;
        }
    }
}

/// Pooled connections to one Redis server.
pub struct Pool {
    endpoint: Endpoint,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Keep a connection that is still in step: fully answered, or answered
    /// with a server error (every reply was read); drop it otherwise.
    fn settle(&self, conn: Conn, res: &Result<(), RespError>) {
        if matches!(res, Ok(()) | Err(RespError::Server(_))) {
            self.give(conn);
        }
    }

    fn give(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }

    /// Send `commands` (RESP, `replies` commands that each answer an array)
    /// and hand every element of every reply to `field`. A pooled connection
    /// the server has closed is replaced once (reads are idempotent).
    pub async fn query_arrays(
        &self,
        commands: &[u8],
        replies: usize,
        field: &mut OnField<'_>,
    ) -> Result<(), RespError> {
        let addr = self.endpoint.addr.as_str();
        if let Some(mut conn) = self.take_idle() {
            let mut untouched = true;
            let mut guard = |r: usize, i: usize, b: Option<&[u8]>| {
                untouched = false;
                field(r, i, b)
            };
            let res = conn.exchange(commands, addr, replies, &mut guard).await;
            // Stale connection (server restarted, idle timeout): retry on a new one
            // unless the caller has already seen part of the answer.
            let stale = matches!(res, Err(RespError::Io { .. })) && untouched;
            self.settle(conn, &res);
            if !stale {
                return res;
            }
            // Whatever dropped this idle connection (a restart, Redis' `timeout`)
            // most likely dropped the other idle ones too: without this, each of
            // them would cost a later read a failed round trip.
            let dropped = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner())).len();
            if let Err(e) = &res {
                tracing::debug!(error = %e, dropped, "redis dropped a pooled connection; reading on a new one");
            }
        }
        let mut conn = Conn::open(&self.endpoint).await?;
        let res = conn.exchange(commands, addr, replies, field).await;
        self.settle(conn, &res);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut buf = Vec::new();
        encode_command(&mut buf, 3, [&b"HMGET"[..], b"k\x00", b""].into_iter());
        assert_eq!(buf, b"*3\r\n$5\r\nHMGET\r\n$2\r\nk\x00\r\n$0\r\n\r\n");
        let mut n = Vec::new();
        push_usize(&mut n, 0);
        push_usize(&mut n, 1234567);
        assert_eq!(n, b"01234567");
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            addr: "127.0.0.1:6379".into(),
            db: 10,
            username: None,
            password: None,
        }
    }

    /// Runs one raw command on a fresh connection and returns its first reply line.
    async fn command(args: &[&[u8]]) -> String {
        let mut conn = Conn::open(&endpoint()).await.unwrap();
        let mut buf = Vec::new();
        encode_command(&mut buf, args.len(), args.iter().copied());
        conn.send(&buf, "test").await.unwrap();
        String::from_utf8_lossy(&conn.read_line("test").await.unwrap()).into_owned()
    }

    fn hmget(key: &[u8], fields: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        let args = [&b"HMGET"[..], key].into_iter().chain(fields.iter().copied());
        encode_command(&mut buf, fields.len() + 2, args);
        buf
    }

    async fn collect(
        pool: &Pool,
        commands: &[u8],
        replies: usize,
    ) -> Result<Vec<(usize, usize, Option<Vec<u8>>)>, RespError> {
        let mut seen = Vec::new();
        pool.query_arrays(commands, replies, &mut |r, i, b| {
            seen.push((r, i, b.map(<[u8]>::to_vec)));
            Ok(())
        })
        .await?;
        Ok(seen)
    }

    #[tokio::test]
    async fn reads_fields_and_survives_errors_and_dropped_connections() {
        let prefix = format!("resp-test-{}", std::process::id());
        let hash = format!("{prefix}-hash");
        let plain = format!("{prefix}-string");
        assert_eq!(
            command(&[b"HSET", hash.as_bytes(), b"a", b"1\r\n2", b"b", b""]).await,
            ":2"
        );
        assert_eq!(command(&[b"SET", plain.as_bytes(), b"x"]).await, "+OK");

        let pool = Pool::new(endpoint());
        let mut two = hmget(hash.as_bytes(), &[b"a", b"zz", b"b"]);
        two.extend(hmget(b"missing-key", &[b"a"]));
        let seen = collect(&pool, &two, 2).await.unwrap();
        assert_eq!(
            seen,
            vec![
                (0, 0, Some(b"1\r\n2".to_vec())),
                (0, 1, None),
                (0, 2, Some(Vec::new())),
                (1, 0, None),
            ]
        );

        // An error reply (WRONGTYPE) fails the call but the connection stays in step.
        let mut mixed = hmget(plain.as_bytes(), &[b"a"]);
        mixed.extend(hmget(hash.as_bytes(), &[b"a"]));
        match collect(&pool, &mixed, 2).await {
            Err(RespError::Server(m)) => assert!(m.starts_with("WRONGTYPE"), "{m}"),
            other => panic!("expected WRONGTYPE, got {other:?}"),
        }
        assert_eq!(
            pool.idle.lock().unwrap().len(),
            1,
            "connection kept after a server error"
        );
        assert_eq!(
            collect(&pool, &hmget(hash.as_bytes(), &[b"a"]), 1).await.unwrap().len(),
            1
        );

        // The server closes the pooled connection: the next read reconnects.
        let local = {
            let idle = pool.idle.lock().unwrap();
            idle[0].stream.local_addr().unwrap().to_string()
        };
        assert_eq!(
            command(&[b"CLIENT", b"KILL", b"ADDR", local.as_bytes(), b"SKIPME", b"yes"]).await,
            ":1"
        );
        let again = collect(&pool, &hmget(hash.as_bytes(), &[b"a"]), 1).await.unwrap();
        assert_eq!(again, vec![(0, 0, Some(b"1\r\n2".to_vec()))]);

        command(&[b"DEL", hash.as_bytes(), plain.as_bytes()]).await;
    }

    #[tokio::test]
    async fn connection_refused_is_an_error() {
        let pool = Pool::new(Endpoint {
            addr: "127.0.0.1:1".into(),
            ..endpoint()
        });
        let err = collect(&pool, &hmget(b"k", &[b"a"]), 1).await.unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }

    /// Replies far larger than one socket read (a 1 MiB field among 2,000
    /// replies) arrive in pieces and are parsed across reads.
    #[tokio::test]
    async fn replies_spanning_many_reads() {
        let hash = format!("resp-test-{}-big", std::process::id());
        let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let mut set = Vec::new();
        encode_command(&mut set, 4, [&b"HSET"[..], hash.as_bytes(), b"big", &big].into_iter());
        let mut conn = Conn::open(&endpoint()).await.unwrap();
        conn.send(&set, "test").await.unwrap();
        assert_eq!(conn.read_line("test").await.unwrap(), b":1");
        assert_eq!(command(&[b"HSET", hash.as_bytes(), b"small", b"s"]).await, ":1");

        let mut commands = Vec::new();
        for i in 0..2_000 {
            let fields: &[&[u8]] = if i == 1_000 {
                &[b"small", b"big"]
            } else {
                &[b"small", b"none"]
            };
            commands.extend(hmget(hash.as_bytes(), fields));
        }
        let pool = Pool::new(endpoint());
        let mut count = 0;
        let mut big_seen = false;
        pool.query_arrays(&commands, 2_000, &mut |r, i, b| {
            count += 1;
            match (r, i) {
                (_, 0) => assert_eq!(b, Some(&b"s"[..])),
                (1_000, 1) => {
                    assert_eq!(b, Some(big.as_slice()));
                    big_seen = true;
                }
                _ => assert_eq!(b, None),
            }
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(count, 4_000);
        assert!(big_seen);
        command(&[b"DEL", hash.as_bytes()]).await;
    }
}
