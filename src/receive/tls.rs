//! The receiver's TLS: its certificate and key from PEM files, TLS 1.2 and 1.3 only (rustls
//! has nothing older), HTTP/1.1, and with `client_ca` a client certificate that must chain to
//! that CA (mTLS: DataStream presents the one uploaded to the stream).

use crate::config::{ReceiveSettings, TlsFiles};
use crate::diagnostics::error_reporting::{Exit, Failure};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;

/// A configuration error (exit 3) naming the key to fix.
fn invalid(key: &'static str, path: &Path, problem: impl std::fmt::Display) -> anyhow::Error {
    Failure::error(
        Exit::Config,
        format!("`{key}` {}: {problem}", path.display()),
    )
}

fn certificates(key: &'static str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(key, path, format!("cannot be read as PEM: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                key,
                path,
                format!("holds a certificate that does not parse: {e}"),
            )
        })?;
    if certificates.is_empty() {
        return Err(invalid(
            key,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certificates)
}

pub fn server_config(
    settings: &ReceiveSettings,
    files: &TlsFiles,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = certificates("tls_cert", &files.cert)?;
    // The key's parse error may quote key material: only say that it failed.
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|_| {
        invalid(
            "tls_key",
            &files.key,
            "holds no readable PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls_cert", &files.cert, e))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates("client_ca", path)? {
                roots
                    .add(certificate)
                    .map_err(|e| invalid("client_ca", path, format!("is not a usable CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid("client_ca", path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        invalid(
            "tls_key",
            &files.key,
            format!("does not fit the certificate in tls_cert: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
