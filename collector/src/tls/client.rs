//! The exporters' side: a rustls client configuration from the system's roots or a CA file, with an
//! optional client certificate, and the recognition of a failed handshake in an error chain (a handshake
//! that failed once fails again: it is a permanent error, not something to retry forever).

use std::error::Error;
use std::path::PathBuf;

use rustls::ClientConfig;
use serde::Deserialize;

use super::{certificates, private_key, provider, read, root_store, TlsError};

/// `[exporters.tls]`: used with an `https://` endpoint.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientFiles {
    /// PEM CA certificates that sign the upstream's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for an upstream that requires one (with `key-file`).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl ClientFiles {
    pub fn is_empty(&self) -> bool {
        self == &ClientFiles::default()
    }
}

/// Builds the client configuration; `alpn` is what the protocol speaks (`h2` for gRPC).
pub fn client_config(files: &ClientFiles, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
    let roots = match &files.ca_file {
        Some(path) => root_store(path, &read(path)?)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::Verifier(
                    "no system root certificates found; set ca-file".into(),
                ));
            }
            roots
        }
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => builder.with_client_auth_cert(
            certificates(cert, &read(cert)?)?,
            private_key(key, &read(key)?)?,
        )?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError::Verifier(
                "cert-file and key-file go together".into(),
            ))
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// For a plain-text endpoint: reqwest wants a TLS configuration anyway; this one trusts nothing.
pub fn trust_nothing() -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// The TLS error somewhere in `err`'s chain, as a reason, if the failure was the TLS handshake's.
pub fn handshake_failure(err: &(dyn Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error hides its payload from `source()` (it answers the payload's source): walk into it.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_rustls_error_behind_io_and_wrappers() {
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Wrapper(#[source] std::io::Error);
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let reason = handshake_failure(&Wrapper(io)).unwrap();
        assert!(reason.contains("UnknownIssuer"), "{reason}");
        let nested = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        ));
        let reason = handshake_failure(&Wrapper(nested)).unwrap();
        assert!(
            reason.contains("CertificateRequired"),
            "io inside io: {reason}"
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            handshake_failure(&Wrapper(refused)),
            None,
            "not a TLS failure"
        );
    }

    #[test]
    fn config_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ClientFiles {
            ca_file: Some(dir.path().join("nope.pem")),
            ..Default::default()
        };
        let e = client_config(&missing, &[]).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let garbage = dir.path().join("ca.pem");
        std::fs::write(&garbage, "not pem").unwrap();
        let e = client_config(
            &ClientFiles {
                ca_file: Some(garbage),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ca.pem"), "{e}");
        let half = ClientFiles {
            cert_file: Some(dir.path().join("c.pem")),
            ..Default::default()
        };
        assert!(client_config(&half, &[]).is_err());
    }
}
