//! The operator as a child process: start, /readyz, /metrics, CPU time and
//! peak RSS from /proc, SIGTERM, and a summary of its log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub struct Operator {
    child: Child,
    pub pid: u32,
    pub metrics_addr: SocketAddr,
    pub log: PathBuf,
}

pub struct Launch<'a> {
    pub bin: &'a Path,
    pub kubeconfig: &'a Path,
    pub namespace: &'a str,
    pub resync_seconds: u64,
    pub concurrency: u16,
    pub log: PathBuf,
    pub rust_log: Option<&'a str>,
}

/// A free loopback port (bound, then released for the child).
pub fn free_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    l.local_addr().context("local address of a probe socket")
}

impl Operator {
    pub fn start(l: &Launch<'_>) -> Result<Self> {
        if !l.bin.exists() {
            bail!(
                "operator binary {} not found: build it with `cargo build --release -p larder-operator` (or pass --operator-bin)",
                l.bin.display()
            );
        }
        let metrics_addr = free_addr()?;
        let log = std::fs::File::create(&l.log).with_context(|| format!("create {}", l.log.display()))?;
        let mut cmd = Command::new(l.bin);
        cmd.arg("--namespace")
            .arg(l.namespace)
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .arg("--resync-seconds")
            .arg(l.resync_seconds.to_string())
            .arg("--concurrency")
            .arg(l.concurrency.to_string())
            .env("KUBECONFIG", l.kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("LARDER_WATCH_NAMESPACES")
            .env_remove("LARDER_METRICS_ADDR")
            .env_remove("LARDER_RESYNC_SECONDS")
            .env_remove("LARDER_LEADER_ELECT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicate the log file handle")?)
            .stderr(log)
            // Whatever happens to the benchmark, the operator goes with it.
            .kill_on_drop(true);
        match l.rust_log {
            Some(v) => cmd.env("RUST_LOG", v),
            None => cmd.env_remove("RUST_LOG"),
        };
        let child = cmd.spawn().with_context(|| format!("start {}", l.bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("the operator exited at once"))?;
        Ok(Operator {
            child,
            pid,
            metrics_addr,
            log: l.log.clone(),
        })
    }

    /// Wait until /readyz answers 200 (caches synced).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("poll the operator")? {
                bail!(
                    "the operator exited ({status}) before it was ready; its log ({}):\n{}",
                    self.log.display(),
                    tail(&self.log, 20)
                );
            }
            if let Ok((200, _)) = http_get(self.metrics_addr, "/readyz").await {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!(
                    "the operator's /readyz did not answer 200 within {} s; its log ({}):\n{}",
                    timeout.as_secs(),
                    self.log.display(),
                    tail(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn metrics(&self) -> Result<Metrics> {
        let (code, body) = http_get(self.metrics_addr, "/metrics")
            .await
            .context("scrape the operator's /metrics")?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(Metrics::parse(&body))
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn usage(&self) -> Result<Usage> {
        Usage::of(self.pid)
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; the exit status text and how long it took.
    pub async fn stop(mut self, grace: Duration) -> Result<(String, Duration)> {
        let started = Instant::now();
        if let Some(status) = self.child.try_wait()? {
            return Ok((format!("had already exited ({status})"), started.elapsed()));
        }
        let term = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .context("run kill -TERM")?;
        if !term.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok((status?.to_string(), started.elapsed())),
            Err(_) => {
                self.child.kill().await.context("SIGKILL the operator")?;
                Ok((
                    format!("did not stop within {} s of SIGTERM; killed", grace.as_secs()),
                    started.elapsed(),
                ))
            }
        }
    }
}

/// CPU time and memory of a process from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    /// VmHWM, bytes.
    pub peak_rss: u64,
    /// VmRSS, bytes.
    pub rss: u64,
    pub threads: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Result<Usage> {
        let stat =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("read /proc/{pid}/stat"))?;
        let (cpu_s, threads) = parse_stat(&stat, clock_ticks())?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("read /proc/{pid}/status"))?;
        Ok(Usage {
            cpu_s,
            peak_rss: status_kib(&status, "VmHWM:") * 1024,
            rss: status_kib(&status, "VmRSS:") * 1024,
            threads,
        })
    }
}

/// utime + stime in seconds and the thread count, from a /proc/PID/stat line.
fn parse_stat(stat: &str, ticks: f64) -> Result<(f64, u64)> {
    // The command name (field 2) may hold spaces and parentheses: fields
    // after the last ')' start at field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc stat line: {stat}"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        f.get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no field {n} in /proc stat line: {stat}"))
    };
    Ok(((field(14)? + field(15)?) as f64 / ticks, field(20)?))
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU seconds of other processes (the test API server's components), by name.
pub fn cpu_of(pids: &[(String, u32)]) -> BTreeMap<String, f64> {
    pids.iter()
        .filter_map(|(name, pid)| Usage::of(*pid).ok().map(|u| (name.clone(), u.cpu_s)))
        .collect()
}

/// The operator's counters from its Prometheus text.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub reconciles: BTreeMap<String, u64>,
    pub writes: BTreeMap<String, u64>,
    /// By `kind/reason`.
    pub errors: BTreeMap<String, u64>,
    /// Per kind: (sum of seconds, count).
    pub duration: BTreeMap<String, (f64, u64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let label = |key: &str| -> String {
                labels
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim_matches('"').to_string())
                    .unwrap_or_default()
            };
            match name {
                "larder_operator_reconciles_total" => {
                    *m.reconciles.entry(label("kind")).or_default() += value as u64;
                }
                "larder_operator_registry_writes_total" => {
                    *m.writes.entry(label("kind")).or_default() += value as u64;
                }
                "larder_operator_reconcile_errors_total" => {
                    *m.errors
                        .entry(format!("{}/{}", label("kind"), label("reason")))
                        .or_default() += value as u64;
                }
                "larder_operator_reconcile_duration_seconds_sum" => {
                    m.duration.entry(label("kind")).or_default().0 += value;
                }
                "larder_operator_reconcile_duration_seconds_count" => {
                    m.duration.entry(label("kind")).or_default().1 += value as u64;
                }
                _ => {}
            }
        }
        m
    }

    pub fn total_reconciles(&self) -> u64 {
        self.reconciles.values().sum()
    }

    pub fn total_writes(&self) -> u64 {
        self.writes.values().sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `self - before`, per key (counters only grow).
    pub fn since(&self, before: &Metrics) -> Metrics {
        fn diff(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
            a.iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(b.get(k).copied().unwrap_or(0))))
                .filter(|(_, v)| *v > 0)
                .collect()
        }
        Metrics {
            reconciles: diff(&self.reconciles, &before.reconciles),
            writes: diff(&self.writes, &before.writes),
            errors: diff(&self.errors, &before.errors),
            duration: self
                .duration
                .iter()
                .map(|(k, (s, c))| {
                    let (bs, bc) = before.duration.get(k).copied().unwrap_or_default();
                    (k.clone(), (s - bs, c.saturating_sub(bc)))
                })
                .filter(|(_, (_, c))| *c > 0)
                .collect(),
        }
    }
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| anyhow!("GET http://{addr}{path}: no answer within 10 s"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET http://{addr}{path}: malformed response"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("GET http://{addr}{path}: no status code in {head:?}"))?;
    Ok((code, body.to_string()))
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The operator's log, summarized: lines by level, and warnings/errors
/// grouped by message (and `reason=` when there is one), most frequent first.
#[derive(Debug, Default)]
pub struct LogSummary {
    pub lines: usize,
    pub by_level: BTreeMap<String, usize>,
    /// (group, count, first example line)
    pub problems: Vec<(String, usize, String)>,
}

pub fn summarize_log(path: &Path) -> LogSummary {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut s = LogSummary::default();
    let mut groups: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for raw in text.lines() {
        let line = strip_ansi(raw);
        s.lines += 1;
        let level = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
            .into_iter()
            .find(|l| line.split_whitespace().nth(1) == Some(*l))
            .unwrap_or("other");
        *s.by_level.entry(level.to_string()).or_default() += 1;
        if level == "WARN" || level == "ERROR" || (level == "other" && !line.trim().is_empty()) {
            let g = group_of(&line, level);
            let e = groups.entry(g).or_insert((0, line.clone()));
            e.0 += 1;
        }
    }
    let mut problems: Vec<(String, usize, String)> = groups.into_iter().map(|(g, (n, ex))| (g, n, ex)).collect();
    problems.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    s.problems = problems;
    s
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// `LEVEL target: message [reason=…]` without timestamps, spans and other fields.
fn group_of(line: &str, level: &str) -> String {
    // `<timestamp> LEVEL span{…}: target: message key=value …`
    let after_level = line.split_once(level).map_or(line, |(_, r)| r).trim();
    let msg = match after_level.find("larder_") {
        Some(i) => &after_level[i..],
        None => after_level,
    };
    let msg = msg.split_once(": ").map_or(msg, |(_, m)| m);
    // The message ends where the first `key=value` field starts.
    let words: Vec<&str> = msg.split(' ').collect();
    let end = words
        .iter()
        .position(|w| {
            w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
        })
        .unwrap_or(words.len());
    let text = words[..end].join(" ");
    let text = text.trim();
    let reason = msg
        .split_whitespace()
        .find_map(|w| w.strip_prefix("reason="))
        .map(|r| format!(" reason={}", r.trim_matches('"')))
        .unwrap_or_default();
    format!("{level} {text}{reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_by_kind() {
        let text = r#"# HELP larder_operator_reconciles_total Reconciles run, by kind
# TYPE larder_operator_reconciles_total counter
larder_operator_reconciles_total{kind="Entity"} 10
larder_operator_reconciles_total{kind="FeatureView"} 12
larder_operator_registry_writes_total{kind="Entity"} 10
larder_operator_reconcile_errors_total{kind="FeatureView",reason="ReferenceNotFound"} 3
larder_operator_reconcile_duration_seconds_sum{kind="Entity"} 0.5
larder_operator_reconcile_duration_seconds_count{kind="Entity"} 10
larder_operator_leader 1
"#;
        let m = Metrics::parse(text);
        assert_eq!(m.total_reconciles(), 22);
        assert_eq!(m.total_writes(), 10);
        assert_eq!(m.errors["FeatureView/ReferenceNotFound"], 3);
        assert_eq!(m.duration["Entity"], (0.5, 10));
        let later = Metrics::parse(&text.replace("} 12", "} 20"));
        let d = later.since(&m);
        assert_eq!(d.reconciles.get("FeatureView"), Some(&8));
        assert_eq!(d.reconciles.get("Entity"), None);
        assert_eq!(d.total_writes(), 0);
    }

    #[test]
    fn stat_fields_after_the_command_name() {
        let line = "1234 (larder (op) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 17 0 100 0 0";
        let (cpu, threads) = parse_stat(line, 100.0).unwrap();
        assert!((cpu - 3.0).abs() < 1e-9, "{cpu}");
        assert_eq!(threads, 17);
    }

    #[test]
    fn log_lines_group_by_message_and_reason() {
        let line = "\u{1b}[2m2026-01-01T00:00:00.1Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m reconcile{kind=\"FeatureView\" object=ns/a}: larder_operator::reconcile_object: reconcile failed kind=\"FeatureView\" object=ns/a reason=\"ReferenceNotFound\" error=x";
        let g = group_of(&strip_ansi(line), "WARN");
        assert_eq!(g, "WARN reconcile failed reason=ReferenceNotFound");
        let line = "2026-01-01T00:00:00.1Z  WARN reconciling object{object.ref=Entity/a}:reconcile{kind=\"Entity\"}: larder_operator::reconcile_object: no ready FeatureStore: leaving the registry object in place project=\"p\" name=driver_00001";
        assert_eq!(
            group_of(line, "WARN"),
            "WARN no ready FeatureStore: leaving the registry object in place"
        );
    }
}
