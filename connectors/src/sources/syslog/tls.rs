//! The rustls server configuration of a `mode = "tls"` syslog source, from PEM files: the
//! certificate chain, the private key and, when `ca_file` is set, the CAs that client
//! certificates must chain to (clients without a valid certificate are then refused). The
//! `ring` crypto provider is used; TLS 1.2 and 1.3 are offered. No TLS 1.3 session tickets
//! are sent: the server writes nothing after the handshake.

use super::SyslogTlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

pub(crate) type Acceptor = tokio_rustls::TlsAcceptor;

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Loads the files and builds the acceptor.
pub(crate) fn acceptor(t: &SyslogTlsConfig) -> Result<Acceptor, String> {
    let chain = certs(&t.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file).map_err(|e| {
        format!(
            "`{}`: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            t.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &t.ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("`{}`: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("`{}`: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
    // Syslog clients only write. TLS 1.3 session tickets sent after the handshake would sit
    // unread in their sockets, turning their close into a reset that discards whatever they
    // had not sent yet (syslog-ng's loggen lost the tail of every burst that way).
    config.send_tls13_tickets = 0;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
