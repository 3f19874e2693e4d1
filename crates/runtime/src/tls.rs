//! A server's TLS certificate chain and private key, from PEM files
//! (`--tls-cert`, `--tls-key`).
//!
//! The files are read and checked once, at startup: a missing file, or one
//! without a certificate or key, is an error naming that file before any
//! port is bound, not a handshake failure or an anonymous error from the
//! TLS stack later. The checked pair then becomes what each server needs:
//! a tonic `Identity` for gRPC (feature `tonic`) and a rustls
//! `ServerConfig` for HTTPS (feature `rustls`).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {}: {message}", path.display())]
    Cert { path: PathBuf, message: String },
    #[error("cannot read private key {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("a TLS certificate and private key go together; only the {0} was given")]
    Incomplete(&'static str),
    #[error("invalid certificate/key pair: {0}")]
    Config(String),
}

/// A PEM certificate chain and private key, read and parsed.
pub struct PemPair {
    chain: Vec<CertificateDer<'static>>,
    #[cfg(feature = "rustls")]
    key: PrivateKeyDer<'static>,
    // tonic parses PEM itself.
    #[cfg(feature = "tonic")]
    cert_pem: Vec<u8>,
    #[cfg(feature = "tonic")]
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for PemPair {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl PemPair {
    /// Reads the certificate chain (at least one certificate) and the first
    /// private key (PKCS#8, PKCS#1 or SEC1) from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_err = |message: String| TlsError::Cert {
            path: cert.to_path_buf(),
            message,
        };
        let key_err = |message: String| TlsError::Key {
            path: key.to_path_buf(),
            message,
        };
        let cert_pem = std::fs::read(cert).map_err(|e| cert_err(e.to_string()))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err(e.to_string()))?;
        if chain.is_empty() {
            return Err(cert_err("no PEM certificate found".into()));
        }
        let key_pem = std::fs::read(key).map_err(|e| key_err(e.to_string()))?;
        let parsed = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => key_err("no PEM private key found".into()),
            e => key_err(e.to_string()),
        })?;
        #[cfg(not(feature = "rustls"))]
        drop(parsed);
        Ok(Self {
            chain,
            #[cfg(feature = "rustls")]
            key: parsed,
            #[cfg(feature = "tonic")]
            cert_pem,
            #[cfg(feature = "tonic")]
            key_pem,
        })
    }

    /// [`PemPair::load`] for a pair of optional flags: `None` when neither
    /// is given, an error when only one is.
    pub fn load_optional(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<Self>, TlsError> {
        match (cert, key) {
            (Some(c), Some(k)) => Self::load(c, k).map(Some),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::Incomplete("certificate")),
            (None, Some(_)) => Err(TlsError::Incomplete("private key")),
        }
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The identity a tonic server's `ServerTlsConfig` takes.
    #[cfg(feature = "tonic")]
    pub fn tonic_identity(&self) -> tonic::transport::Identity {
        tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    /// A rustls server config (ring, TLS 1.2 and 1.3, no client
    /// certificates) offering `alpn` protocols, e.g. `[b"h2", b"http/1.1"]`.
    /// Fails when the key does not match the certificate.
    #[cfg(feature = "rustls")]
    pub fn rustls_config(
        &self,
        alpn: &[&[u8]],
    ) -> Result<std::sync::Arc<tokio_rustls::rustls::ServerConfig>, TlsError> {
        use tokio_rustls::rustls;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(std::sync::Arc::new(cfg))
    }
}

/// [`PemPair::load`] then [`PemPair::rustls_config`].
#[cfg(feature = "rustls")]
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<std::sync::Arc<tokio_rustls::rustls::ServerConfig>, TlsError> {
    PemPair::load(cert, key)?.rustls_config(alpn)
}

/// [`PemPair::load`] then [`PemPair::tonic_identity`].
#[cfg(feature = "tonic")]
pub fn identity(cert: &Path, key: &Path) -> Result<tonic::transport::Identity, TlsError> {
    Ok(PemPair::load(cert, key)?.tonic_identity())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
    }

    #[test]
    fn loads_a_certificate_and_key() {
        let pair = PemPair::load(&testdata("cert.pem"), &testdata("key.pem")).expect("load");
        assert_eq!(pair.chain().len(), 1);
        assert!(!format!("{pair:?}").contains("PRIVATE"), "Debug hides the key");
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nope = dir.path().join("nope.pem");
        let err = PemPair::load(&nope, &testdata("key.pem")).unwrap_err();
        assert!(matches!(err, TlsError::Cert { .. }), "{err:?}");
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let err = PemPair::load(&testdata("cert.pem"), &nope).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err:?}");
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn a_file_without_pem_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, b"\x00\xffnot pem at all\n").expect("write");
        let err = PemPair::load(&junk, &testdata("key.pem")).unwrap_err();
        assert!(
            err.to_string().contains("junk.pem") && err.to_string().contains("no PEM certificate"),
            "{err}"
        );
        let err = PemPair::load(&testdata("cert.pem"), &junk).unwrap_err();
        assert!(
            err.to_string().contains("junk.pem") && err.to_string().contains("no PEM private key"),
            "{err}"
        );
        // The files swapped: a key where the certificate belongs and back.
        let err = PemPair::load(&testdata("key.pem"), &testdata("cert.pem")).unwrap_err();
        assert!(matches!(err, TlsError::Cert { .. }), "{err:?}");
    }

    #[test]
    fn a_broken_pem_block_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let err = PemPair::load(&broken, &testdata("key.pem")).unwrap_err();
        assert!(err.to_string().contains("broken.pem"), "{err}");
        let truncated = dir.path().join("truncated.pem");
        std::fs::write(&truncated, "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n").expect("write");
        let err = PemPair::load(&testdata("cert.pem"), &truncated).unwrap_err();
        assert!(err.to_string().contains("truncated.pem"), "{err}");
    }

    #[test]
    fn optional_flags_go_together() {
        let cert = testdata("cert.pem");
        let key = testdata("key.pem");
        assert!(PemPair::load_optional(None, None).expect("none").is_none());
        assert!(PemPair::load_optional(Some(&cert), Some(&key)).expect("both").is_some());
        assert!(matches!(
            PemPair::load_optional(Some(&cert), None),
            Err(TlsError::Incomplete("certificate"))
        ));
        assert!(matches!(
            PemPair::load_optional(None, Some(&key)),
            Err(TlsError::Incomplete("private key"))
        ));
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn rustls_config_offers_the_alpn_protocols() {
        let cfg = server_config(&testdata("cert.pem"), &testdata("key.pem"), &[b"h2", b"http/1.1"]).expect("config");
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn rustls_config_rejects_a_key_for_another_certificate() {
        let err = server_config(&testdata("cert.pem"), &testdata("other-key.pem"), &[]).unwrap_err();
        assert!(matches!(err, TlsError::Config(_)), "{err:?}");
    }

    #[cfg(feature = "tonic")]
    #[tokio::test]
    async fn tonic_accepts_the_identity() {
        let identity = identity(&testdata("cert.pem"), &testdata("key.pem")).expect("identity");
        tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .expect("tonic TLS config");
    }
}
