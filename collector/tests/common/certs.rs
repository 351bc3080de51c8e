//! Certificates made by the tests themselves (rcgen): a CA, and server or client certificates it signs,
//! written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub path: PathBuf,
}

/// A certificate and its key, as PEM files.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &pem).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
            path,
        }
    }

    /// A certificate for 127.0.0.1 and localhost, usable by a server or (with `client`) a client.
    pub fn issue(&self, dir: &Path, name: &str, client: bool) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert_pem = params.signed_by(&key, &self.issuer).unwrap().pem();
        let key_pem = key.serialize_pem();
        let issued = Issued {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
            cert_pem,
            key_pem,
        };
        issued.write();
        issued
    }
}

impl Issued {
    /// (Re)writes the files, as a certificate renewal would.
    pub fn write(&self) {
        std::fs::write(&self.key, &self.key_pem).unwrap();
        std::fs::write(&self.cert, &self.cert_pem).unwrap();
    }

    pub fn write_to(&self, cert: &Path, key: &Path) {
        std::fs::write(key, &self.key_pem).unwrap();
        std::fs::write(cert, &self.cert_pem).unwrap();
    }

    pub fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.cert_pem, self.key_pem).as_bytes())
            .unwrap()
    }
}

/// An HTTPS client trusting only `ca`, with `identity` as its client certificate when given.
pub fn https_client(ca: &Ca, identity: Option<&Issued>) -> reqwest::Client {
    // A hung exchange fails its test in 30 s with a timeout error instead of holding CI until its limit.
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap());
    if let Some(issued) = identity {
        builder = builder.identity(issued.identity());
    }
    builder.build().unwrap()
}
