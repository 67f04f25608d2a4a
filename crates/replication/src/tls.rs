//! TLS for the secondary's connection to its primary, per libpq sslmode:
//! which certificates to trust and present, and how to verify the primary.

use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::TlsConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::{Error as PemError, PemObject};

use crate::client::{display_address, ConnectError};
use crate::url::{PrimaryUrl, SslMode};

/// The TLS connector for the URL's sslmode (`None` for disable), built on
/// the ring provider only. Reads sslrootcert/sslcert/sslkey now, so a bad
/// file is reported before any network traffic.
pub fn tls_connector(url: &PrimaryUrl) -> Result<Option<TlsConnector>, ConnectError> {
    if url.sslmode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| ConnectError::Tls {
        address: display_address(url),
        reason: e.to_string(),
    };
    let roots = match (&url.sslrootcert, url.sslmode) {
        (Some(path), SslMode::VerifyCa | SslMode::VerifyFull) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("sslrootcert", path)? {
                roots
                    .add(cert)
                    .map_err(|e| cert_error("sslrootcert", path, e))?;
            }
            Some(Arc::new(roots))
        }
        (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
            return Err(ConnectError::Certificate {
                param: "sslrootcert",
                path: String::new(),
                reason: format!("sslmode={} needs sslrootcert", url.sslmode),
            })
        }
        _ => None,
    };
    let verifier = Arc::new(PrimaryCertVerifier {
        roots,
        check_name: url.sslmode == SslMode::VerifyFull,
        provider: provider.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&url.sslcert, &url.sslkey) {
        (Some(cert_path), Some(key_path)) => {
            let certs = read_certs("sslcert", cert_path)?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| match e {
                PemError::NoItemsFound => cert_error("sslkey", key_path, "no PEM private key"),
                e => cert_error("sslkey", key_path, e),
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                cert_error("sslkey", key_path, format!("unusable with sslcert: {e}"))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

fn cert_error(param: &'static str, path: &Path, reason: impl std::fmt::Display) -> ConnectError {
    ConnectError::Certificate {
        param,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// All PEM certificates of a file; an empty file is an error.
fn read_certs(
    param: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| cert_error(param, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(param, path, e))?;
    if certs.is_empty() {
        return Err(cert_error(param, path, "no PEM certificate"));
    }
    Ok(certs)
}

/// One verifier for every TLS sslmode. With `roots` (verify-ca/-full) the
/// chain must lead to sslrootcert, and with `check_name` (verify-full) the
/// certificate must name the URL's host. Without roots (allow/prefer/
/// require) any certificate is accepted, as in libpq. Handshake signatures
/// are always checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct PrimaryCertVerifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PrimaryCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            let algorithms = self.provider.signature_verification_algorithms.all;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                algorithms,
            )?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
