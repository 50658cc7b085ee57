//! TLS from PEM files: the listener's server config (optionally verifying client
//! certificates) and the downstream client config (CA file or system roots, optional
//! client certificate). Errors are one-line reasons naming the file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: no usable PEM private key: {e}", path.display()))
}

fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .map_err(|e| format!("{}: bad CA certificate: {e}", path.display()))?;
    }
    Ok(store)
}

/// The listener's TLS config; with `client_ca`, clients must present a certificate it signed.
///
/// # Errors
/// A reason naming the file that could not be read or used.
pub fn server_config(
    cert: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs(cert)?, key(key_file)?)
        .map_err(|e| {
            format!(
                "{} and {}: certificate and key do not fit: {e}",
                cert.display(),
                key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The downstream client's TLS config: trust `ca` (else the system roots) and present
/// `cert`/`key` if given.
///
/// # Errors
/// A reason naming the file that could not be read or used.
pub fn client_config(
    ca: Option<&Path>,
    cert_key: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, String> {
    let store = match ca {
        Some(ca) => roots(ca)?,
        None => {
            let mut store = RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                // A broken system certificate is skipped, as browsers do.
                let _ = store.add(c);
            }
            store
        }
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store);
    // No ALPN here: the hyper-rustls connector sets it (and refuses a preset one).
    let config = match cert_key {
        None => builder.with_no_client_auth(),
        Some((cert, key_file)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_file)?)
            .map_err(|e| {
                format!(
                    "{} and {}: certificate and key do not fit: {e}",
                    cert.display(),
                    key_file.display()
                )
            })?,
    };
    Ok(Arc::new(config))
}
