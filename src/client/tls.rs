//! TLS settings shared by the token request (ureq) and the WebSocket: rustls with
//! the ring provider. Trust comes from `tls_roots` (the webpki list built in, the
//! operating system's store through rustls-platform-verifier, or both), plus an
//! optional CA file. There is no way to turn verification off.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
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
        // `dangerous()` is rustls's door to a verifier of one's own; this one is the
        // platform's, which verifies as strictly as the webpki one.
        TlsRoots::Os => builder.dangerous().with_custom_certificate_verifier(platform_verifier(extra, provider, roots)),
        TlsRoots::Both => {
            // The platform verifier's own "system store plus these roots" on each OS
            // (on Windows they are consulted only when the system finds no trusted root).
            let with_webpki = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned().chain(extra).collect();
            builder.dangerous().with_custom_certificate_verifier(platform_verifier(with_webpki, provider, roots))
        }
    };
    Ok(Arc::new(config.with_no_client_auth()))
}

fn platform_verifier(
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    roots: TlsRoots,
) -> Arc<OnFirstUse> {
    Arc::new(OnFirstUse { extra, provider, roots, verifier: OnceLock::new() })
}

/// The platform verifier, made on first use. That happens in a handshake, on the
/// client's own threads, so reading the system store (milliseconds of file I/O
/// on Linux) never runs on the host's main thread in `Client::new`. Made once
/// per client: reconnections reuse it.
#[derive(Debug)]
struct OnFirstUse {
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    roots: TlsRoots,
    verifier: OnceLock<Result<Verifier, String>>,
}

impl OnFirstUse {
    fn get(&self) -> Result<&Verifier, rustls::Error> {
        let made = self.verifier.get_or_init(|| {
            let provider = self.provider.clone();
            let verifier = if self.extra.is_empty() {
                Verifier::new(provider)
            } else {
                Verifier::new_with_extra_roots(self.extra.iter().cloned(), provider)
            };
            let name = self.roots.as_str();
            verifier.map_err(|e| format!("tls_roots \"{name}\": the system certificate store cannot be used: {e}"))
        });
        made.as_ref().map_err(|why| rustls::Error::General(why.clone()))
    }
}

impl ServerCertVerifier for OnFirstUse {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match self.get() {
            Ok(verifier) => verifier.supported_verify_schemes(),
            // The handshake fails at verify_server_cert with the reason.
            Err(_) => self.provider.signature_verification_algorithms.supported_schemes(),
        }
    }
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
