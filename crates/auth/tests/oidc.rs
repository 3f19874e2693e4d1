//! OIDC verification over real HTTP, with no mock of the verifier:
//!
//! - a real provider (`oidc-provider` 8.8.1 on Node.js, `e2e/oidc/`, run by
//!   larder-testkit's `OidcProvider`) issues client_credentials tokens; user
//!   mapping, audience, issuer, key rotation;
//! - an in-test provider (axum) serves discovery and a JWKS built from keys
//!   the `openssl` CLI generates, for tokens the tests forge: expiry, leeway,
//!   algorithm confusion, `none`, altered payloads, unknown kids, and the
//!   JWKS fetch counts behind caching and rate-limited refetching;
//! - unreachable or failing providers, which must give `Unavailable`.
//!
//! Nothing here is skipped: without node/npm, curl or openssl the tests fail.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, get_current_timestamp};
use larder_auth::oidc::OidcAuthenticator;
use larder_auth::{Auth, AuthConfig, AuthError, AuthType, Authenticate, AuthorizationMode, OidcConfig, User};
use larder_testkit::oidc::OidcProvider;
use serde_json::{Value, json};

// ------------------------------------------------------------------ shared

fn config(discovery_url: &str) -> OidcConfig {
    OidcConfig {
        discovery_url: discovery_url.to_string(),
        client_id: None,
        audience: None,
        issuer: None,
        verify_ssl: true,
        ca_cert_path: None,
        jwks_cache_lifespan: Duration::from_secs(300),
        request_timeout: Duration::from_secs(5),
        leeway: Duration::from_secs(10),
    }
}

fn verifier(cfg: OidcConfig) -> OidcAuthenticator {
    OidcAuthenticator::new(cfg).expect("authenticator")
}

async fn passes(a: &OidcAuthenticator, token: &str, what: &str) -> User {
    match a.authenticate(token).await {
        Ok(u) => u,
        Err(e) => panic!("{what}: expected a user, got {e:?}"),
    }
}

async fn refused(a: &OidcAuthenticator, token: &str, what: &str) {
    match a.authenticate(token).await {
        Err(AuthError::Unauthenticated(_)) => {}
        other => panic!("{what}: expected Unauthenticated, got {other:?}"),
    }
}

async fn unavailable(a: &OidcAuthenticator, token: &str, what: &str) {
    match a.authenticate(token).await {
        Err(AuthError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.expect("a kid")
}

// ---------------------------------------------------- the real provider

fn two_clients() -> Value {
    json!([
        {"client_id": "reader", "client_secret": "reader-secret",
         "roles": ["feast-reader"], "groups": ["readers"],
         "resource_access_client": "larder", "resource_roles": ["store-read"]},
        {"client_id": "writer", "client_secret": "writer-secret",
         "roles": ["feast-writer", "feast-reader"], "groups": ["writers", "ops"],
         "resource_access_client": "larder", "resource_roles": ["store-write", "feast-writer"]}
    ])
}

#[tokio::test]
async fn real_provider_tokens_become_users() {
    let p = OidcProvider::start(&two_clients());
    let reader = p.token("reader", "reader-secret");
    let writer = p.token("writer", "writer-secret");
    let (status, _) = p.token_response("reader", "wrong", &[]);
    assert_eq!(status, 401, "the provider checks client secrets");

    // Everything configured as a production deployment would.
    let mut cfg = config(&p.discovery_url());
    cfg.client_id = Some("larder".into());
    cfg.audience = Some("larder".into());
    cfg.issuer = Some(p.issuer().to_string());
    let a = verifier(cfg.clone());
    let u = passes(&a, &reader, "reader").await;
    assert_eq!(u.username, "reader");
    assert_eq!(u.roles, ["store-read", "feast-reader"]);
    assert_eq!(u.groups, ["readers"]);
    let u = passes(&a, &writer, "writer").await;
    assert_eq!(u.username, "writer");
    assert_eq!(u.roles, ["store-write", "feast-writer", "feast-reader"]);
    assert_eq!(u.groups, ["writers", "ops"]);

    // Without client_id only the top-level roles count.
    let a = verifier(config(&p.discovery_url()));
    assert_eq!(
        passes(&a, &writer, "no client_id").await.roles,
        ["feast-writer", "feast-reader"]
    );

    // Audience: checked only when configured.
    let other_aud = p.token_with("reader", "reader-secret", &[("resource", "urn:other")]);
    refused(&verifier(cfg.clone()), &other_aud, "aud urn:other, audience larder").await;
    passes(
        &verifier(config(&p.discovery_url())),
        &other_aud,
        "aud urn:other, no audience",
    )
    .await;
    let mut wrong_aud = cfg.clone();
    wrong_aud.audience = Some("not-larder".into());
    refused(&verifier(wrong_aud), &reader, "audience not-larder").await;

    // Issuer.
    let mut wrong_iss = cfg.clone();
    wrong_iss.issuer = Some("http://127.0.0.1:1".into());
    refused(&verifier(wrong_iss), &reader, "wrong issuer").await;
    let mut trailing = cfg.clone();
    trailing.issuer = Some(format!("{}/", p.issuer()));
    refused(&verifier(trailing), &reader, "issuer with a trailing slash").await;

    // The same through the Auth facade, built from larder.yaml's shape.
    let auth = Auth::from_config(&AuthConfig {
        auth_type: AuthType::Oidc(cfg),
        ..AuthConfig::default()
    })
    .await
    .unwrap();
    let u = auth.authenticate(Some(&format!("Bearer {writer}"))).await.unwrap();
    assert_eq!(u.username, "writer");
    assert_eq!(u.roles, ["store-write", "feast-writer", "feast-reader"]);
    let bad = auth.authenticate(Some(&format!("Bearer {other_aud}"))).await;
    assert!(matches!(bad, Err(AuthError::Unauthenticated(_))), "{bad:?}");
}

#[tokio::test]
async fn real_provider_key_rotation() {
    let mut p = OidcProvider::start(&two_clients());
    let mut cfg = config(&p.discovery_url());
    cfg.audience = Some("larder".into());
    cfg.issuer = Some(p.issuer().to_string());
    let a = verifier(cfg);

    let old = p.token("reader", "reader-secret");
    let first_fetch = Instant::now();
    passes(&a, &old, "token before rotation").await;

    // The verifier refetches on an unknown kid only if its last fetch is
    // at least 1 s old.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(first_fetch.elapsed())).await;
    let new_kid = p.rotate();
    assert_ne!(new_kid, kid_of(&old));

    let new = p.token("reader", "reader-secret");
    assert_eq!(kid_of(&new), new_kid);
    let u = passes(&a, &new, "token signed with the rotated key").await;
    assert_eq!(u.username, "reader");
    refused(&a, &old, "token of the retired key, right after the refetch").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refused(&a, &old, "token of the retired key, after another refetch").await;
    passes(&a, &new, "new token still").await;
}

// ------------------------------------------------ locally generated keys

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the `openssl` CLI is needed by these tests: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct RsaKey {
    enc: EncodingKey,
    public_pem: Vec<u8>,
    n: String,
}

struct EcKey {
    enc: EncodingKey,
    x: String,
    y: String,
}

struct Keys {
    rsa: RsaKey,
    rsa_other: RsaKey,
    ec: EcKey,
    _dir: tempfile::TempDir,
}

fn rsa_key(dir: &Path, name: &str) -> RsaKey {
    let file = dir.join(format!("{name}.pem"));
    let f = file.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        f,
    ]);
    let text = String::from_utf8(openssl(&["rsa", "-in", f, "-noout", "-text"])).unwrap();
    assert!(
        text.contains("publicExponent: 65537"),
        "unexpected RSA exponent:\n{text}"
    );
    let modulus = String::from_utf8(openssl(&["rsa", "-in", f, "-noout", "-modulus"])).unwrap();
    let modulus = modulus.trim().strip_prefix("Modulus=").expect("Modulus=");
    let mut n = unhex(modulus);
    while n.first() == Some(&0) {
        n.remove(0);
    }
    let pem = std::fs::read(&file).unwrap();
    RsaKey {
        enc: EncodingKey::from_rsa_pem(&pem).unwrap(),
        public_pem: openssl(&["pkey", "-in", f, "-pubout"]),
        n: b64(&n),
    }
}

fn ec_key(dir: &Path) -> EcKey {
    let file = dir.join("ec.pem");
    let f = file.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        f,
    ]);
    // SubjectPublicKeyInfo DER ends with the point 04 || x || y.
    let der = openssl(&["pkey", "-in", f, "-pubout", "-outform", "DER"]);
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4, "an uncompressed P-256 point");
    EcKey {
        enc: EncodingKey::from_ec_pem(&std::fs::read(&file).unwrap()).unwrap(),
        x: b64(&point[1..33]),
        y: b64(&point[33..]),
    }
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    Keys {
        rsa: rsa_key(dir.path(), "rsa"),
        rsa_other: rsa_key(dir.path(), "rsa-other"),
        ec: ec_key(dir.path()),
        _dir: dir,
    }
}

fn rsa_jwk(kid: &str, key: &RsaKey, alg: Option<&str>) -> Value {
    let mut j = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": key.n, "e": "AQAB"});
    if let Some(alg) = alg {
        j["alg"] = json!(alg);
    }
    j
}

fn ec_jwk(kid: &str, key: &EcKey) -> Value {
    json!({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256", "x": key.x, "y": key.y, "alg": "ES256"})
}

/// `rsa-1` (no `alg`), `rsa-rs256` (the same key, `alg: RS256`), `ec-1`.
fn standard_jwks(k: &Keys) -> Value {
    json!({"keys": [
        rsa_jwk("rsa-1", &k.rsa, None),
        rsa_jwk("rsa-rs256", &k.rsa, Some("RS256")),
        ec_jwk("ec-1", &k.ec),
    ]})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn now() -> i64 {
    get_current_timestamp() as i64
}

// ------------------------------------------------ the in-test provider

struct IdpState {
    base: String,
    jwks: Mutex<String>,
    jwks_status: AtomicU16,
    discovery_status: AtomicU16,
    jwks_delay_ms: AtomicU64,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

/// Discovery at `/.well-known/openid-configuration`, the JWKS at `/jwks`.
struct Idp {
    state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

impl Idp {
    async fn start(jwks: &Value) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = Arc::new(IdpState {
            base: format!("http://{}", listener.local_addr().unwrap()),
            jwks: Mutex::new(jwks.to_string()),
            jwks_status: AtomicU16::new(200),
            discovery_status: AtomicU16::new(200),
            jwks_delay_ms: AtomicU64::new(0),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", axum::routing::get(discovery))
            .route("/jwks", axum::routing::get(jwks_doc))
            .with_state(state.clone());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { state, task }
    }

    fn issuer(&self) -> String {
        self.state.base.clone()
    }

    fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.state.base)
    }

    fn set_jwks(&self, body: &str) {
        *self.state.jwks.lock().unwrap() = body.to_string();
    }

    /// (discovery fetches, JWKS fetches)
    fn hits(&self) -> (usize, usize) {
        (
            self.state.discovery_hits.load(SeqCst),
            self.state.jwks_hits.load(SeqCst),
        )
    }

    /// Claims of a valid token from this issuer for audience `larder`.
    fn claims(&self) -> Value {
        json!({"sub": "alice-sub", "preferred_username": "alice", "iss": self.issuer(), "aud": "larder",
               "iat": now(), "exp": now() + 300, "roles": ["feast-reader"], "groups": ["g"]})
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(s): State<Arc<IdpState>>) -> Response {
    s.discovery_hits.fetch_add(1, SeqCst);
    let status = StatusCode::from_u16(s.discovery_status.load(SeqCst)).unwrap();
    if status != StatusCode::OK {
        return status.into_response();
    }
    axum::Json(json!({"issuer": s.base, "jwks_uri": format!("{}/jwks", s.base)})).into_response()
}

async fn jwks_doc(State(s): State<Arc<IdpState>>) -> Response {
    s.jwks_hits.fetch_add(1, SeqCst);
    let delay = s.jwks_delay_ms.load(SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = StatusCode::from_u16(s.jwks_status.load(SeqCst)).unwrap();
    let body = s.jwks.lock().unwrap().clone();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn with_claim(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without_claim(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

#[tokio::test]
async fn local_keys_valid_tokens_pass_and_claims_are_checked() {
    let k = keys();
    let idp = Idp::start(&standard_jwks(&k)).await;
    let mut cfg = config(&idp.discovery_url());
    cfg.audience = Some("larder".into());
    cfg.issuer = Some(idp.issuer());
    let a = verifier(cfg);
    let c = idp.claims();

    let u = passes(&a, &sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c), "RS256").await;
    assert_eq!(u.username, "alice");
    assert_eq!(u.roles, ["feast-reader"]);
    assert_eq!(u.groups, ["g"]);
    passes(&a, &sign(Algorithm::RS384, Some("rsa-1"), &k.rsa.enc, &c), "RS384").await;
    passes(
        &a,
        &sign(Algorithm::RS256, Some("rsa-rs256"), &k.rsa.enc, &c),
        "RS256, JWK alg RS256",
    )
    .await;
    passes(&a, &sign(Algorithm::PS256, Some("rsa-1"), &k.rsa.enc, &c), "PS256").await;
    passes(&a, &sign(Algorithm::ES256, Some("ec-1"), &k.ec.enc, &c), "ES256").await;
    passes(&a, &sign(Algorithm::RS256, None, &k.rsa.enc, &c), "RS256 without kid").await;
    passes(&a, &sign(Algorithm::ES256, None, &k.ec.enc, &c), "ES256 without kid").await;
    let t = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &k.rsa.enc,
        &with_claim(c.clone(), "aud", json!(["x", "larder"])),
    );
    passes(&a, &t, "aud list holding larder").await;
    let t = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &k.rsa.enc,
        &with_claim(c.clone(), "exp", json!(now() - 5)),
    );
    passes(&a, &t, "expired 5 s ago, within the 10 s leeway").await;
    let t = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &k.rsa.enc,
        &with_claim(c.clone(), "nbf", json!(now() + 5)),
    );
    passes(&a, &t, "nbf 5 s ahead, within the leeway").await;

    let bad = [
        ("expired 60 s ago", {
            let c = with_claim(c.clone(), "exp", json!(now() - 60));
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c)
        }),
        ("nbf 60 s ahead", {
            let c = with_claim(c.clone(), "nbf", json!(now() + 60));
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c)
        }),
        (
            "no exp",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &k.rsa.enc,
                &without_claim(c.clone(), "exp"),
            ),
        ),
        ("exp not a number", {
            let c = with_claim(c.clone(), "exp", json!("tomorrow"));
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c)
        }),
        ("wrong iss", {
            let c = with_claim(c.clone(), "iss", json!("http://evil.example"));
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c)
        }),
        (
            "no iss, issuer configured",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &k.rsa.enc,
                &without_claim(c.clone(), "iss"),
            ),
        ),
        ("wrong aud", {
            let c = with_claim(c.clone(), "aud", json!("other"));
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c)
        }),
        ("aud list without larder", {
            let c = with_claim(c.clone(), "aud", json!(["a", "b"]));
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c)
        }),
        (
            "no aud, audience configured",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &k.rsa.enc,
                &without_claim(c.clone(), "aud"),
            ),
        ),
        ("no user claim", {
            let c = without_claim(without_claim(c.clone(), "sub"), "preferred_username");
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c)
        }),
    ];
    for (what, token) in bad {
        refused(&a, &token, what).await;
    }
    assert_eq!(idp.hits(), (1, 1), "one discovery and one JWKS fetch, then the cache");

    // A known kid whose JWK states another alg matches no key, like an
    // unknown kid: refused, with at most the rate-limited refetch.
    let started = Instant::now();
    let t = sign(Algorithm::PS256, Some("rsa-rs256"), &k.rsa.enc, &c);
    refused(&a, &t, "PS256 with a JWK that says RS256").await;
    refused(&a, &t, "PS256 with a JWK that says RS256, again").await;
    assert!(
        idp.hits().1 <= 2 + started.elapsed().as_secs() as usize,
        "{:?}",
        idp.hits()
    );
}

#[tokio::test]
async fn local_keys_audience_and_issuer_are_checked_only_when_configured() {
    let k = keys();
    let idp = Idp::start(&standard_jwks(&k)).await;
    let a = verifier(config(&idp.discovery_url()));
    let c = idp.claims();
    let other = with_claim(
        with_claim(c.clone(), "aud", json!("someone-else")),
        "iss",
        json!("http://x"),
    );
    passes(
        &a,
        &sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &other),
        "any aud and iss",
    )
    .await;
    let bare = without_claim(without_claim(c, "aud"), "iss");
    passes(
        &a,
        &sign(Algorithm::ES256, Some("ec-1"), &k.ec.enc, &bare),
        "no aud, no iss",
    )
    .await;
}

#[tokio::test]
async fn local_keys_forged_tokens_are_refused() {
    let k = keys();
    let idp = Idp::start(&standard_jwks(&k)).await;
    let mut cfg = config(&idp.discovery_url());
    cfg.audience = Some("larder".into());
    cfg.issuer = Some(idp.issuer());
    let a = verifier(cfg);
    let c = idp.claims();
    let good = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c);
    passes(&a, &good, "the unaltered token").await;

    let parts: Vec<&str> = good.split('.').collect();
    let admin = with_claim(c.clone(), "preferred_username", json!("admin"));
    let altered = format!("{}.{}.{}", parts[0], b64(admin.to_string().as_bytes()), parts[2]);
    let header_none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let header_none_kid = b64(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
    let header_none_upper = b64(br#"{"alg":"None","typ":"JWT","kid":"rsa-1"}"#);
    let hs_secret = EncodingKey::from_secret(&k.rsa.public_pem);
    let bad = [
        ("payload altered after signing", altered),
        ("signature cut off", format!("{}.{}.", parts[0], parts[1])),
        ("signature of another token", {
            let other = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &admin);
            let other_sig = other.rsplit('.').next().unwrap();
            format!("{}.{}.{other_sig}", parts[0], parts[1])
        }),
        (
            "another key under a known kid",
            sign(Algorithm::RS256, Some("rsa-1"), &k.rsa_other.enc, &c),
        ),
        (
            "another key, PS256",
            sign(Algorithm::PS256, Some("rsa-1"), &k.rsa_other.enc, &c),
        ),
        (
            "another key, no kid",
            sign(Algorithm::RS256, None, &k.rsa_other.enc, &c),
        ),
        ("alg none", format!("{header_none}.{}.", parts[1])),
        ("alg none with kid", format!("{header_none_kid}.{}.", parts[1])),
        (
            "alg None with a signature",
            format!("{header_none_upper}.{}.{}", parts[1], parts[2]),
        ),
        (
            "HS256 keyed with the RSA public key PEM",
            sign(Algorithm::HS256, Some("rsa-1"), &hs_secret, &c),
        ),
        (
            "HS256 keyed with the public key, no kid",
            sign(Algorithm::HS256, None, &hs_secret, &c),
        ),
        ("HS512 keyed with the modulus", {
            let key = EncodingKey::from_secret(k.rsa.n.as_bytes());
            sign(Algorithm::HS512, Some("rsa-rs256"), &key, &c)
        }),
        ("garbage", "garbage".to_string()),
        ("empty", String::new()),
        ("three dots", "..".to_string()),
        ("base64 junk", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA".to_string()),
        (
            "header not JSON",
            format!("{}.{}.{}", b64(b"{not json"), parts[1], parts[2]),
        ),
        ("four parts", format!("{good}.x")),
    ];
    for (what, token) in &bad {
        refused(&a, token, what).await;
    }
    // Every kid was known (or absent): nothing triggered a refetch.
    assert_eq!(idp.hits(), (1, 1));

    // A kid naming a key of the other type matches no key: refused, with at
    // most the rate-limited refetch of an unknown kid.
    let started = Instant::now();
    let mismatched = [
        (
            "RS256 naming the EC key",
            sign(Algorithm::RS256, Some("ec-1"), &k.rsa.enc, &c),
        ),
        (
            "ES256 naming the RSA key",
            sign(Algorithm::ES256, Some("rsa-1"), &k.ec.enc, &c),
        ),
        (
            "RS256 naming an unknown kid",
            sign(Algorithm::RS256, Some("nope"), &k.rsa.enc, &c),
        ),
    ];
    for (what, token) in &mismatched {
        refused(&a, token, what).await;
    }
    assert!(
        idp.hits().1 <= 2 + started.elapsed().as_secs() as usize,
        "{:?}",
        idp.hits()
    );
}

#[tokio::test]
async fn local_keys_unknown_kids_refetch_once_and_at_most_once_a_second() {
    let k = keys();
    let idp = Idp::start(&standard_jwks(&k)).await;
    let a = verifier(config(&idp.discovery_url()));
    let c = idp.claims();
    let good = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &c);
    let unknown = sign(Algorithm::RS256, Some("nope"), &k.rsa.enc, &c);

    passes(&a, &good, "known kid").await;
    let fetched = Instant::now();
    assert_eq!(idp.hits(), (1, 1));
    refused(&a, &unknown, "unknown kid, cache fresh").await;
    assert_eq!(idp.hits(), (1, 1), "no refetch within a second of the last fetch");

    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(fetched.elapsed())).await;
    refused(&a, &unknown, "unknown kid, after a refetch").await;
    assert_eq!(idp.hits(), (1, 2), "one refetch for the unknown kid");
    for _ in 0..5 {
        refused(&a, &unknown, "unknown kid again").await;
    }
    assert_eq!(
        idp.hits(),
        (1, 2),
        "rate-limited: unknown kids cannot hammer the provider"
    );
    passes(&a, &good, "known kid still").await;

    // Rotation: the JWKS now holds only a new key.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.set_jwks(&json!({"keys": [rsa_jwk("rsa-2", &k.rsa_other, Some("RS256"))]}).to_string());
    let rotated = sign(Algorithm::RS256, Some("rsa-2"), &k.rsa_other.enc, &c);
    passes(&a, &rotated, "token of the new key").await;
    assert_eq!(idp.hits(), (1, 3));
    refused(&a, &good, "token of the retired key").await;
    assert_eq!(idp.hits(), (1, 3), "the discovery document is read once");
}

#[tokio::test]
async fn local_keys_jwks_cache_expires_after_its_lifespan() {
    let k = keys();
    let idp = Idp::start(&standard_jwks(&k)).await;
    let mut cfg = config(&idp.discovery_url());
    cfg.jwks_cache_lifespan = Duration::from_secs(1);
    let a = verifier(cfg);
    let token = sign(Algorithm::ES256, Some("ec-1"), &k.ec.enc, &idp.claims());
    passes(&a, &token, "first").await;
    passes(&a, &token, "second").await;
    assert_eq!(idp.hits(), (1, 1), "cached within the lifespan");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    passes(&a, &token, "after the lifespan").await;
    assert_eq!(idp.hits(), (1, 2), "refetched once the lifespan is over");
    passes(&a, &token, "again").await;
    assert_eq!(idp.hits(), (1, 2));

    // Expired cache and a failing provider: no pass on stale keys.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.state.jwks_status.store(500, SeqCst);
    unavailable(&a, &token, "cache expired, JWKS answering 500").await;
    idp.state.jwks_status.store(200, SeqCst);
    passes(&a, &token, "the provider is back").await;
}

// ------------------------------------------------ unavailable providers

#[tokio::test]
async fn unreachable_provider_is_unavailable() {
    let k = keys();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
    let mut cfg = config(&url);
    cfg.request_timeout = Duration::from_secs(2);
    let claims = json!({"sub": "alice", "exp": now() + 300, "iss": format!("http://127.0.0.1:{port}")});
    let token = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &claims);
    let a = verifier(cfg.clone());
    unavailable(&a, &token, "closed port").await;
    unavailable(&a, &token, "closed port, again").await;
    assert!(matches!(a.prefetch().await, Err(AuthError::Unavailable(_))));

    // Through the facade: the server starts, requests get 503, never a pass.
    let auth = Auth::from_config(&AuthConfig {
        auth_type: AuthType::Oidc(cfg),
        ..AuthConfig::default()
    })
    .await
    .unwrap();
    let r = auth.authenticate(Some(&format!("Bearer {token}"))).await;
    assert!(matches!(r, Err(AuthError::Unavailable(_))), "{r:?}");
    // Garbage is refused before the provider is asked.
    let r = auth.authenticate(Some("Bearer garbage")).await;
    assert!(matches!(r, Err(AuthError::Unauthenticated(_))), "{r:?}");
}

#[tokio::test]
async fn failing_provider_is_unavailable() {
    let k = keys();
    let idp = Idp::start(&standard_jwks(&k)).await;
    let token = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &idp.claims());
    let mut cfg = config(&idp.discovery_url());
    cfg.request_timeout = Duration::from_millis(500);
    let a = verifier(cfg);

    idp.state.discovery_status.store(500, SeqCst);
    unavailable(&a, &token, "discovery answering 500").await;
    idp.state.discovery_status.store(200, SeqCst);

    idp.state.jwks_status.store(500, SeqCst);
    unavailable(&a, &token, "JWKS answering 500").await;
    idp.state.jwks_status.store(404, SeqCst);
    unavailable(&a, &token, "JWKS answering 404").await;
    idp.state.jwks_status.store(200, SeqCst);

    idp.set_jwks("<html>not json</html>");
    unavailable(&a, &token, "JWKS not JSON").await;
    idp.set_jwks(r#"{"keys": "none"}"#);
    unavailable(&a, &token, "JWKS not a key set").await;

    idp.set_jwks(&standard_jwks(&k).to_string());
    idp.state.jwks_delay_ms.store(3000, SeqCst);
    let started = Instant::now();
    unavailable(&a, &token, "JWKS slower than the request timeout").await;
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    idp.state.jwks_delay_ms.store(0, SeqCst);

    // Failures are not remembered: the next request fetches again.
    passes(&a, &token, "the provider recovered").await;
}

// ------------------------------------------------ the Auth facade's cache

#[tokio::test]
async fn auth_facade_reuses_verified_tokens_for_cache_ttl() {
    let k = keys();
    let idp = Idp::start(&standard_jwks(&k)).await;
    let token = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa.enc, &idp.claims());
    let header = format!("Bearer {token}");
    // A zero JWKS lifespan makes every verification fetch the JWKS, so the
    // fetch counter counts verifications.
    let mut cfg = config(&idp.discovery_url());
    cfg.jwks_cache_lifespan = Duration::ZERO;
    let facade = |ttl: Duration| {
        let authenticator = Arc::new(verifier(cfg.clone()));
        Auth::with_authenticator("oidc", authenticator, ttl, AuthorizationMode::Permissions, None)
    };

    let auth = facade(Duration::from_secs(60));
    let first = auth.authenticate(Some(&header)).await.unwrap();
    let second = auth.authenticate(Some(&header)).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.username, "alice");
    assert!(Arc::ptr_eq(&first, &second), "the second call is a cache hit");
    assert_eq!(idp.hits().1, 1, "one verification for two calls");

    let uncached = facade(Duration::ZERO);
    let a = uncached.authenticate(Some(&header)).await.unwrap();
    let b = uncached.authenticate(Some(&header)).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(idp.hits().1, 3, "without a cache every call verifies");

    // Refusals are not cached.
    let forged = sign(Algorithm::RS256, Some("rsa-1"), &k.rsa_other.enc, &idp.claims());
    for _ in 0..2 {
        let r = auth.authenticate(Some(&format!("Bearer {forged}"))).await;
        assert!(matches!(r, Err(AuthError::Unauthenticated(_))), "{r:?}");
    }
    assert_eq!(idp.hits().1, 5);
}
