//! The listeners' TLS configuration, loaded from PEM files and reloaded when their content changes (a
//! renewed certificate, a rotated Kubernetes secret) without a restart. A change that does not load
//! (a half-written file, a key that does not match) is logged and the previous configuration kept.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{certificates, private_key, provider, read, root_store, TlsError};

#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// The current server configuration, shared by every listener.
#[derive(Clone)]
pub struct ServerTls {
    files: Arc<ServerFiles>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ServerTls {
    /// Loads the files once; an error here stops the start.
    pub fn load(files: ServerFiles) -> Result<Self, TlsError> {
        let contents = read_all(&files)?;
        let config = build(&files, &contents)?;
        Ok(ServerTls {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(config)),
        })
    }

    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// An acceptor with the configuration of the moment.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Checks the files every `interval` until `stop`, loading what changed.
    pub async fn watch(self, interval: Duration, stop: CancellationToken) {
        let mut seen = read_all(&self.files).ok();
        let interval = interval.max(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let files = self.files.clone();
            let Ok(Ok(contents)) = tokio::task::spawn_blocking(move || read_all(&files)).await
            else {
                continue;
            };
            if seen.as_ref() == Some(&contents) {
                continue;
            }
            match build(&self.files, &contents) {
                Ok(config) => {
                    match self.current.write() {
                        Ok(mut guard) => *guard = config,
                        Err(poisoned) => *poisoned.into_inner() = config,
                    }
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "TLS files changed but do not load; keeping the previous certificate"
                ),
            }
            seen = Some(contents);
        }
    }
}

/// The bytes of every file, compared to notice a change.
fn read_all(files: &ServerFiles) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut out = vec![read(&files.cert)?, read(&files.key)?];
    if let Some(ca) = &files.client_ca {
        out.push(read(ca)?);
    }
    Ok(out)
}

fn build(files: &ServerFiles, contents: &[Vec<u8>]) -> Result<Arc<ServerConfig>, TlsError> {
    let mut parts = contents.iter();
    let (Some(cert_pem), Some(key_pem)) = (parts.next(), parts.next()) else {
        return Err(TlsError::Verifier("internal: missing file contents".into()));
    };
    let certs = certificates(&files.cert, cert_pem)?;
    let key = private_key(&files.key, key_pem)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (&files.client_ca, parts.next()) {
        (Some(path), Some(ca_pem)) => {
            let roots = root_store(path, ca_pem)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    // gRPC clients require h2 by ALPN; HTTP/1.1 clients get HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
