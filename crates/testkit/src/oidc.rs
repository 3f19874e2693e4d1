//! A real OpenID Connect provider for the auth tests: `oidc-provider` 8.8.1
//! on Node.js (`e2e/oidc/provider.mjs`, its packages installed once by
//! `scripts/oidc-provider.sh`), issuing client_credentials tokens to the
//! clients it is started with.
//!
//! ```no_run
//! use larder_testkit::oidc::OidcProvider;
//! use serde_json::json;
//!
//! let clients = json!([{"client_id": "reader", "client_secret": "s", "roles": ["feast-reader"]}]);
//! let Some(provider) = OidcProvider::start_or_skip(&clients) else { return };
//! let token = provider.token("reader", "s");
//! # let _ = (token, provider.discovery_url());
//! ```
//!
//! Tokens are fetched with the `curl` CLI (this crate has no HTTP client).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the provider may take to say `READY` (a first `npm ci` is
/// done before it starts, so this is node's start-up alone).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// `node e2e/oidc/provider.mjs --clients <JSON>`, killed on drop; it also
/// exits when its stdin closes, should the test die harder.
pub struct OidcProvider {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    issuer: String,
}

impl OidcProvider {
    /// Start the provider with `clients` (provider.mjs's `--clients` JSON:
    /// `client_id`, `client_secret`, and optionally `roles`, `groups`,
    /// `resource_access_client`, `resource_roles`) and wait for its
    /// `READY <issuer>`. Panics without Node.js and npm: for suites that
    /// never skip.
    pub fn start(clients: &Value) -> OidcProvider {
        if let Some(tool) = missing_tool() {
            panic!(
                "`{tool}` is not runnable: the OIDC provider tests need Node.js >= 18 and npm \
                 (then `scripts/oidc-provider.sh install`)"
            );
        }
        Self::spawn(clients)
    }

    /// [`OidcProvider::start`], or, like [`crate::feast::python`], `None`
    /// with a note when Node.js or npm is missing outside CI. In CI (`CI`
    /// set) a missing tool fails the test.
    pub fn start_or_skip(clients: &Value) -> Option<OidcProvider> {
        if let Some(tool) = missing_tool() {
            if std::env::var_os("CI").is_some() {
                panic!("`{tool}` is not runnable: CI must run the OIDC provider tests (Node.js >= 18 and npm)");
            }
            eprintln!("SKIPPED: `{tool}` is not runnable (Node.js >= 18 and npm run the OIDC provider)");
            return None;
        }
        Some(Self::spawn(clients))
    }

    fn spawn(clients: &Value) -> OidcProvider {
        let root = repo_root();
        let dir = install(&root);
        let mut child = Command::new("node")
            .arg(root.join("e2e/oidc/provider.mjs"))
            .arg("--clients")
            .arg(clients.to_string())
            .arg("--exit-on-stdin-eof")
            .env("NODE_PATH", dir.join("node_modules"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node e2e/oidc/provider.mjs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("the provider's stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut provider = OidcProvider {
            child,
            stdin,
            lines,
            issuer: String::new(),
        };
        let started = Instant::now();
        let line = provider.next_line(READY_WITHIN);
        provider.issuer = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the OIDC provider said {line:?} before READY"))
            .to_string();
        eprintln!("oidc provider at {}, ready in {:?}", provider.issuer, started.elapsed());
        provider
    }

    /// The issuer URL (`http://127.0.0.1:<port>`, no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// A client_credentials access token for `client` (HTTP Basic client
    /// authentication); panics unless the provider answers 200 with one.
    pub fn token(&self, client: &str, secret: &str) -> String {
        self.token_with(client, secret, &[])
    }

    /// [`OidcProvider::token`] with `extra` form fields (URL-encoded here),
    /// e.g. `&[("resource", "urn:other")]` for a token of another audience.
    pub fn token_with(&self, client: &str, secret: &str, extra: &[(&str, &str)]) -> String {
        let (status, body) = self.token_response(client, secret, extra);
        assert_eq!(status, 200, "token for {client}: {body}");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token for {client}: {body}"))
            .to_string()
    }

    /// The token endpoint's status and JSON body (`Null` if none), whatever
    /// they are: for tests of refused clients.
    pub fn token_response(&self, client: &str, secret: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-u", &format!("{client}:{secret}")])
            .args(["-d", "grant_type=client_credentials"]);
        for (k, v) in extra {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        post(cmd, &format!("{}/token", self.issuer))
    }

    /// Rotate the signing key (`POST <issuer>/rotate`): the JWKS then holds
    /// only the new key. Waits for the provider's `ROTATED <kid>`; the new kid.
    pub fn rotate(&mut self) -> String {
        let mut cmd = Command::new("curl");
        cmd.args(["--data", ""]);
        let (status, body) = post(cmd, &format!("{}/rotate", self.issuer));
        assert_eq!(status, 200, "{body}");
        let kid = body["kid"]
            .as_str()
            .unwrap_or_else(|| panic!("no kid in {body}"))
            .to_string();
        assert_eq!(self.next_line(Duration::from_secs(5)), format!("ROTATED {kid}"));
        kid
    }

    fn next_line(&mut self, wait: Duration) -> String {
        match self.lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(e) => {
                let status = self.child.try_wait().ok().flatten();
                panic!("no line from the OIDC provider within {wait:?} ({e}); exit status: {status:?}")
            }
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first of `node`, `npm` that does not run.
fn missing_tool() -> Option<&'static str> {
    ["node", "npm"].into_iter().find(|tool| {
        !Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// `scripts/oidc-provider.sh path`: installs once (idempotent), under
/// flock so parallel test processes do not run `npm ci` into the same
/// directory at once; the directory holding `node_modules`.
fn install(root: &Path) -> PathBuf {
    let lock = std::env::temp_dir().join("larder-oidc-provider-install.lock");
    let script = root.join("scripts/oidc-provider.sh");
    let mut install = if Command::new("flock").arg("--version").output().is_ok() {
        let mut c = Command::new("flock");
        c.arg(&lock).arg(&script);
        c
    } else {
        Command::new(&script)
    };
    let out = install.arg("path").output().expect("run scripts/oidc-provider.sh");
    assert!(
        out.status.success(),
        "scripts/oidc-provider.sh path failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("a UTF-8 path").trim())
}

/// `cmd` (curl with its request options) POSTing to `url`: the status and
/// the JSON body (`Null` if none).
fn post(mut cmd: Command, url: &str) -> (u16, Value) {
    let out = cmd
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("run curl (needed for the OIDC provider's tokens): {e}"));
    assert!(
        out.status.success(),
        "POST {url}: curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').expect("curl -w status line");
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("POST {url}: no status in {text:?}"));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
