//! A minimal HTTPS client for the identity provider's discovery document
//! and JWKS: system roots plus an optional CA file, a timeout, a size cap.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Largest document accepted (a JWKS is a few kilobytes).
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot read CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("GET {url}: {reason}")]
    Get { url: String, reason: String },
}

#[derive(Clone)]
pub struct JsonClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl JsonClient {
    /// `verify_ssl: false` accepts any certificate (Feast's option for
    /// test providers); a warning says so at start.
    pub fn new(verify_ssl: bool, ca_cert: Option<&Path>, timeout: Duration) -> Result<Self, HttpError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Ca {
                path: String::new(),
                reason: e.to_string(),
            })?;
        let tls = if verify_ssl {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if let Some(path) = ca_cert {
                let ca = |reason: String| HttpError::Ca {
                    path: path.display().to_string(),
                    reason,
                };
                let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
                let mut added = 0;
                for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                    let cert: CertificateDer<'static> = cert.map_err(|e| ca(e.to_string()))?;
                    roots.add(cert).map_err(|e| ca(e.to_string()))?;
                    added += 1;
                }
                if added == 0 {
                    return Err(ca("no certificate in it".into()));
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            tracing::warn!("auth.verify_ssl is false: the identity provider's certificate is not checked");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(JsonClient {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, HttpError> {
        let fail = |reason: String| HttpError::Get {
            url: url.to_string(),
            reason,
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| fail(e.to_string()))?;
        let req = hyper::Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| fail(e.to_string()))?;
        let fetch = async {
            let resp = self.client.request(req).await.map_err(|e| fail(e.to_string()))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(fail(format!("HTTP {status}")));
            }
            serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| fail(format!("no answer within {:?}", self.timeout)))?
    }
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
