//! TLS settings shared by the token request (ureq) and the WebSocket: rustls with
//! the ring provider. Trust comes from `tls_roots` (the webpki list built in, the
//! operating system's store through rustls-platform-verifier, or both), plus an
//! optional CA file. There is no way to turn verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_platform_verifier::Verifier;

use super::config::TlsRoots;
use crate::protocol::error::{DataNetError, INVALID_ARGUMENT};

pub fn client_config(roots: TlsRoots, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, DataNetError> {
    let extra = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup failed: {e}")))?;
    let config = match roots {
        TlsRoots::Webpki => {
            let mut store = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            for cert in extra {
                store.add(cert).map_err(|e| invalid(format!("ca_file: unusable certificate: {e}")))?;
            }
            builder.with_root_certificates(store)
        }
        TlsRoots::Os => {
            builder.dangerous().with_custom_certificate_verifier(platform_verifier(extra, provider, roots)?)
        }
        TlsRoots::Both => {
            // The platform verifier's own "system store plus these roots" on each OS,
            // so the OS's distrust decisions still apply on Windows and macOS.
            let with_webpki = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned().chain(extra).collect();
            builder.dangerous().with_custom_certificate_verifier(platform_verifier(with_webpki, provider, roots)?)
        }
    };
    Ok(Arc::new(config.with_no_client_auth()))
}

fn platform_verifier(
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    roots: TlsRoots,
) -> Result<Arc<Verifier>, DataNetError> {
    let verifier =
        if extra.is_empty() { Verifier::new(provider) } else { Verifier::new_with_extra_roots(extra, provider) };
    verifier.map(Arc::new).map_err(|e| {
        let name = roots.as_str();
        invalid(format!("tls_roots \"{name}\": the system certificate store cannot be used: {e}"))
    })
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, DataNetError> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("cannot read ca_file {shown}: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("ca_file {shown} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!("ca_file {shown} holds no certificate")));
    }
    // Checked here for every `tls_roots`, so that a bad file is an error at
    // creation rather than a refused handshake later.
    let mut check = RootCertStore::empty();
    for cert in &certs {
        check.add(cert.clone()).map_err(|e| invalid(format!("ca_file {shown}: unusable certificate: {e}")))?;
    }
    Ok(certs)
}

fn invalid(message: String) -> DataNetError {
    DataNetError::new(INVALID_ARGUMENT, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_every_root_choice_and_reports_bad_ca_files() {
        for roots in [TlsRoots::Webpki, TlsRoots::Both] {
            assert!(client_config(roots, None).is_ok(), "{roots:?}");
        }
        let missing = client_config(TlsRoots::Both, Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(missing.message.contains("/nonexistent/ca.pem"));
        let dir = std::env::temp_dir().join(format!("dn-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for roots in [TlsRoots::Webpki, TlsRoots::Os, TlsRoots::Both] {
            assert!(client_config(roots, Some(&empty)).unwrap_err().message.contains("no certificate"), "{roots:?}");
        }
    }
}
