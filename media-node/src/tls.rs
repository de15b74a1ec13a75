//! TURN over TLS ("turns:", RFC 8656 section 3.1): the same framing as TURN
//! over TCP (see [`crate::tcp`]), inside a TLS session, for networks that
//! only let TLS on port 443 through. This module only builds the rustls
//! server configuration from a PEM certificate chain and private key; the
//! handshake runs per connection in the TCP multiplexer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate chain file is unreadable or holds no certificate.
    #[error("TLS certificate chain {path}: {source}")]
    Certificate { path: PathBuf, source: pem::Error },
    /// The key file is unreadable or holds no private key.
    #[error("TLS private key {path}: {source}")]
    Key { path: PathBuf, source: pem::Error },
    /// rustls refused the pair (e.g. the key does not match the
    /// certificate, or its algorithm is unsupported).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

/// A TLS acceptor serving the chain in `cert_path` (leaf first) with the
/// private key in `key_path` (PKCS#8, PKCS#1 or SEC1), both PEM. Uses the
/// ring provider explicitly, so it does not depend on which rustls crypto
/// features other crates switch on.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_err = |source| TlsError::Certificate {
        path: cert_path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if certs.is_empty() {
        return Err(cert_err(pem::Error::NoItemsFound));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Key {
        path: key_path.to_owned(),
        source,
    })?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
