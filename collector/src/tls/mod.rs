//! TLS with rustls (ring as the one crypto provider): `server` loads the listeners' certificate, key and
//! client CAs and reloads them when the files change; `listener` accepts TLS connections for the serve
//! helper and answers plaintext with a clear refusal; `client` builds the exporters' client configuration
//! (system roots or a CA file, a client certificate) and recognises handshake failures.

mod client;
mod listener;
mod server;

use std::sync::Arc;

pub use client::{client_config, handshake_failure, trust_nothing, ClientFiles};
pub use listener::{after_failed_accept, Conn, Handed, Incoming, Live};
pub use server::{ServerFiles, ServerTls};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA file: {0}")]
    Verifier(String),
}

/// The crypto provider every configuration is built with (chosen here, not by feature unification).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn certificates(
    path: &std::path::Path,
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            what: "no PEM certificate in it".into(),
        });
    }
    Ok(certs)
}

fn private_key(
    path: &std::path::Path,
    pem: &[u8],
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        what: format!("no usable PEM private key ({e})"),
    })
}

fn root_store(path: &std::path::Path, pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path, pem)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            what: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}
