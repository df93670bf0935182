//! TLS settings shared by the token request (ureq) and the WebSocket: rustls with
//! the ring provider, webpki roots built in, plus an optional CA file.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::protocol::error::{DataNetError, INVALID_ARGUMENT};

pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, DataNetError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| invalid(format!("cannot read ca_file {shown}: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("ca_file {shown} is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(format!("ca_file {shown} holds no certificate")));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| invalid(format!("ca_file {shown}: unusable certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn invalid(message: String) -> DataNetError {
    DataNetError::new(INVALID_ARGUMENT, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_default_and_reports_bad_ca_files() {
        assert!(client_config(None).is_ok());
        let missing = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(missing.message.contains("/nonexistent/ca.pem"));
        let dir = std::env::temp_dir().join(format!("dn-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(client_config(Some(&empty)).unwrap_err().message.contains("no certificate"));
    }
}
