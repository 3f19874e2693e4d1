//! Redis logical databases leased to one test at a time.
//!
//! Feast's Redis layout has no key prefix: a project's keys are its entity
//! keys, so a test that flushes, counts or scans keys needs a logical
//! database nobody else writes to. (Tests that only read and write their own
//! project can share database 0 under a [`unique_name`](crate::unique_name)
//! project instead, as the online-store tests do.)
//!
//! Leases are keys in database 0 (`larder-testkit:redis-db-lease:<n>`, set
//! with `NX` and a one-hour expiry, so a killed test process frees its
//! database later), which makes them hold across nextest's test processes.

use std::time::{Duration, Instant};

/// Address of this machine's Redis server, in the `host:port` form of the
/// online stores' `connection_string`.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// Logical databases handed out: not 0 (shared; leases live there), 13
/// (bench/serve's default) or 15 (bench/materialize's default).
const LEASABLE: [u8; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14];
const LEASE_PREFIX: &str = "larder-testkit:redis-db-lease:";
const LEASE_MS: u64 = 3_600_000;
/// How long `lease` waits for a database when every one is leased.
const WAIT: Duration = Duration::from_secs(300);

/// A Redis logical database of one test's own: leased (across processes),
/// flushed when leased and again when dropped, then given back.
#[derive(Debug)]
pub struct RedisDb {
    number: u8,
    token: String,
}

impl RedisDb {
    /// Lease a free logical database on [`REDIS_ADDR`] and flush it; waits
    /// while all are leased. Panics if Redis does not answer.
    pub fn lease() -> Self {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = connect(0);
        let deadline = Instant::now() + WAIT;
        loop {
            for number in LEASABLE {
                let got: Option<String> = redis::cmd("SET")
                    .arg(format!("{LEASE_PREFIX}{number}"))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(LEASE_MS)
                    .query(&mut conn)
                    .expect("SET NX of a Redis database lease");
                if got.is_some() {
                    let db = RedisDb { number, token };
                    db.flush();
                    return db;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no free Redis logical database within {WAIT:?} (all of {LEASABLE:?} leased)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The logical database number.
    pub fn number(&self) -> u8 {
        self.number
    }

    /// `redis://127.0.0.1:6379/<n>`, for the `redis` crate.
    pub fn url(&self) -> String {
        format!("redis://{REDIS_ADDR}/{}", self.number)
    }

    /// `127.0.0.1:6379,db=<n>`: an online store's `connection_string`, in
    /// the form Feast and Larder both take.
    pub fn connection_string(&self) -> String {
        format!("{REDIS_ADDR},db={}", self.number)
    }

    /// A new (synchronous) connection to this database.
    pub fn connection(&self) -> redis::Connection {
        connect(self.number)
    }

    /// Remove every key of this database.
    pub fn flush(&self) {
        redis::cmd("FLUSHDB")
            .query::<()>(&mut self.connection())
            .unwrap_or_else(|e| panic!("FLUSHDB of Redis database {}: {e}", self.number));
    }

    fn release(&self) -> redis::RedisResult<()> {
        redis::cmd("FLUSHDB").query::<()>(&mut redis::Client::open(self.url())?.get_connection()?)?;
        // Delete the lease only if it is still ours (it may have expired and
        // been taken by another test).
        let mut conn = redis::Client::open(format!("redis://{REDIS_ADDR}/0"))?.get_connection()?;
        redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        )
        .key(format!("{LEASE_PREFIX}{}", self.number))
        .arg(&self.token)
        .invoke::<i64>(&mut conn)?;
        Ok(())
    }
}

impl Drop for RedisDb {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            crate::cleanup_failed(
                true,
                format!("could not flush and release Redis database {}: {e}", self.number),
            );
        }
    }
}

fn connect(number: u8) -> redis::Connection {
    redis::Client::open(format!("redis://{REDIS_ADDR}/{number}"))
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("Redis at {REDIS_ADDR} (is it running? scripts/services.sh starts it): {e}"))
}
