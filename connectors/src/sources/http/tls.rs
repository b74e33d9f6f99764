//! TLS for the HTTP source: a rustls server configuration (the `ring` provider) from PEM
//! files, with client certificates required and verified when a CA file is given.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `tls = { cert_file, key_file, ca_file }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate they signed.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls.{key}: cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.{key}: {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.{key}: {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Loads the files and builds the server configuration (HTTP/1.1 over ALPN).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let chain = certs(&self.cert_file, "cert_file")?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| {
            format!(
                "tls.key_file: cannot read a private key from {}: {e}",
                self.key_file.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match &self.ca_file {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(ca, "ca_file")? {
                    roots
                        .add(c)
                        .map_err(|e| format!("tls.ca_file: {}: {e}", ca.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .map_err(|e| format!("tls.ca_file: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("tls: the certificate and key do not go together: {e}"))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
