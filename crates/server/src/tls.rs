//! TLS for the SQL port: loads the node certificate and the CA from the
//! certs directory and builds the rustls server configuration (ring
//! provider only), with optional client certificates verified against the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// File names inside the certs directory (the names the KWDB example URL uses).
pub const CA_CERT_FILE: &str = "ca.crt";
pub const NODE_CERT_FILE: &str = "node.crt";
pub const NODE_KEY_FILE: &str = "node.key";

/// ALPN protocol name of PostgreSQL 17's direct SSL negotiation.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Why the TLS configuration could not be built. Every message names the
/// file involved and, where there is one, the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {} not found: create it with \"{fix}\"", path.display())]
    NotFound { path: PathBuf, fix: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid PEM file: {detail}", path.display())]
    Pem { path: PathBuf, detail: String },
    #[error("{} holds no {what} (expected a PEM \"{what}\" block)", path.display())]
    Empty { path: PathBuf, what: &'static str },
    #[error("CA certificate in {} is not usable: {source}", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the client certificate verifier from {}: {source}", path.display())]
    Verifier {
        path: PathBuf,
        #[source]
        source: VerifierBuilderError,
    },
    #[error(
        "{} and {} do not form a usable certificate/key pair: {source}; \
         re-create them with \"duet cert create-node HOST... --certs-dir {} --overwrite\"",
        dir.join(NODE_CERT_FILE).display(), dir.join(NODE_KEY_FILE).display(), dir.display()
    )]
    BadNodeCert {
        dir: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration rejected: {0}")]
    Config(#[source] rustls::Error),
}

/// Builds the server TLS configuration from `ca.crt`, `node.crt` and
/// `node.key` in `certs_dir`. Client certificates are optional; one that is
/// presented must chain to `ca.crt`.
pub fn load_server_tls(certs_dir: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let ca_path = certs_dir.join(CA_CERT_FILE);
    let cert_path = certs_dir.join(NODE_CERT_FILE);
    let key_path = certs_dir.join(NODE_KEY_FILE);
    let dir = certs_dir.display();
    let create_ca = format!("duet cert create-ca --certs-dir {dir}");
    let create_node = format!("duet cert create-node localhost --certs-dir {dir}");

    let ca_pem = read_file(&ca_path, &create_ca)?;
    let cert_pem = read_file(&cert_path, &create_node)?;
    let key_pem = read_file(&key_path, &create_node)?;

    let ca_certs = parse_certs(&ca_path, &ca_pem)?;
    let chain = parse_certs(&cert_path, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error(&key_path, e, "PRIVATE KEY"))?;

    let mut roots = RootCertStore::empty();
    for ca in ca_certs {
        roots.add(ca).map_err(|source| TlsError::BadCa {
            path: ca_path.clone(),
            source,
        })?;
    }

    // Explicit provider: the process never needs a global default, and
    // aws-lc-rs is never pulled in.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|source| TlsError::Verifier {
            path: ca_path.clone(),
            source,
        })?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::BadNodeCert {
            dir: certs_dir.to_path_buf(),
            source,
        })?;
    // Lets PostgreSQL 17 clients use sslnegotiation=direct; clients that
    // send no ALPN at all (the classic SSLRequest path) are still accepted.
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Arc::new(config))
}

/// The subject common name of a DER certificate (the user name for `cert`
/// authentication), or `None` if it cannot be parsed or has no CN.
pub fn client_cert_common_name(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn read_file(path: &Path, fix: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TlsError::NotFound {
                path: path.to_path_buf(),
                fix: fix.to_owned(),
            }
        } else {
            TlsError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e, "CERTIFICATE"))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
            what: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, err: rustls_pki_types::pem::Error, what: &'static str) -> TlsError {
    match err {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: path.to_path_buf(),
            what,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    };
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ServerConnection};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
    }

    impl Ca {
        fn new(name: &str) -> Ca {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
            Ca {
                issuer: CertifiedIssuer::self_signed(params, key).expect("ca cert"),
            }
        }

        /// Returns (cert PEM, key PEM) of a leaf signed by this CA.
        fn leaf(&self, cn: &str, sans: &[&str], eku: ExtendedKeyUsagePurpose) -> (String, String) {
            let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
            let mut params = CertificateParams::new(sans).expect("params");
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![eku];
            params.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
            let cert = params.signed_by(&key, &self.issuer).expect("sign");
            (cert.pem(), key.serialize_pem())
        }
    }

    fn write_node_certs(dir: &Path, ca: &Ca) {
        let (cert, key) = ca.leaf(
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        std::fs::write(dir.join(CA_CERT_FILE), ca.issuer.pem()).expect("write ca");
        std::fs::write(dir.join(NODE_CERT_FILE), cert).expect("write cert");
        std::fs::write(dir.join(NODE_KEY_FILE), key).expect("write key");
    }

    #[test]
    fn loads_generated_certs_with_alpn() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_node_certs(dir.path(), &Ca::new("test CA"));
        let config = load_server_tls(dir.path()).expect("load");
        assert_eq!(config.alpn_protocols, vec![b"postgresql".to_vec()]);
        // The config is usable for a connection.
        ServerConnection::new(config).expect("server connection");
    }

    #[test]
    fn missing_files_name_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_server_tls(dir.path()).expect_err("no certs");
        let msg = err.to_string();
        assert!(matches!(err, TlsError::NotFound { .. }), "{msg}");
        assert!(msg.contains("ca.crt not found"), "{msg}");
        assert!(msg.contains("duet cert create-ca --certs-dir"), "{msg}");

        let ca = Ca::new("test CA");
        std::fs::write(dir.path().join(CA_CERT_FILE), ca.issuer.pem()).expect("write ca");
        let msg = load_server_tls(dir.path())
            .expect_err("no node cert")
            .to_string();
        let expected = format!(
            "certificate file {} not found: create it with \"duet cert create-node localhost --certs-dir {}\"",
            dir.path().join("node.crt").display(),
            dir.path().display()
        );
        assert_eq!(msg, expected);

        write_node_certs(dir.path(), &ca);
        std::fs::remove_file(dir.path().join(NODE_KEY_FILE)).expect("rm key");
        let msg = load_server_tls(dir.path())
            .expect_err("no node key")
            .to_string();
        assert!(msg.contains("node.key not found"), "{msg}");
    }

    #[test]
    fn rejects_garbage_and_empty_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("test CA");
        write_node_certs(dir.path(), &ca);

        std::fs::write(dir.path().join(NODE_KEY_FILE), "not a key\n").expect("write");
        let err = load_server_tls(dir.path()).expect_err("no key");
        assert!(
            matches!(
                err,
                TlsError::Empty {
                    what: "PRIVATE KEY",
                    ..
                }
            ),
            "{err}"
        );

        write_node_certs(dir.path(), &ca);
        std::fs::write(dir.path().join(CA_CERT_FILE), "").expect("write");
        let err = load_server_tls(dir.path()).expect_err("empty ca");
        assert!(
            matches!(
                err,
                TlsError::Empty {
                    what: "CERTIFICATE",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("ca.crt holds no CERTIFICATE"),
            "{err}"
        );

        write_node_certs(dir.path(), &ca);
        std::fs::write(
            dir.path().join(CA_CERT_FILE),
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let err = load_server_tls(dir.path()).expect_err("bad base64");
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    }

    #[test]
    fn key_not_matching_cert_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("test CA");
        write_node_certs(dir.path(), &ca);
        let (_, other_key) = ca.leaf("other", &["other"], ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::write(dir.path().join(NODE_KEY_FILE), other_key).expect("write");
        let err = load_server_tls(dir.path()).expect_err("mismatch");
        assert!(matches!(err, TlsError::BadNodeCert { .. }), "{err}");
        assert!(err.to_string().contains("--overwrite"), "{err}");
    }

    #[test]
    fn common_name_of_client_cert() {
        let ca = Ca::new("test CA");
        let (pem, _) = ca.leaf("root", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("der");
        assert_eq!(client_cert_common_name(&der).as_deref(), Some("root"));
        assert_eq!(
            client_cert_common_name(ca.issuer.der()).as_deref(),
            Some("test CA")
        );
        assert_eq!(client_cert_common_name(b"garbage"), None);

        // A certificate without a CN.
        let mut params = CertificateParams::new(vec!["x.example".to_string()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "duet");
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(client_cert_common_name(cert.der()), None);
    }

    /// Runs one handshake over an in-memory pipe; returns the client
    /// certificate's CN as seen by the server, or the handshake error.
    async fn handshake(
        server: Arc<ServerConfig>,
        ca_pem: &str,
        client_cert: Option<(String, String)>,
        alpn: Option<&[u8]>,
    ) -> Result<Option<String>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("ca pem")).expect("add root");
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut client = match client_cert {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain");
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        if let Some(alpn) = alpn {
            client.alpn_protocols = vec![alpn.to_vec()];
        }

        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let server_task = tokio::spawn(async move {
            let mut stream = TlsAcceptor::from(server)
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let cn = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| client_cert_common_name(cert));
            let mut buf = [0u8; 4];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            stream.write_all(&buf).await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(cn)
        });
        let name = ServerName::try_from("localhost").expect("name");
        let client_result = async {
            let mut stream = TlsConnector::from(Arc::new(client))
                .connect(name, client_io)
                .await
                .map_err(|e| e.to_string())?;
            stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(&buf, b"ping");
            Ok::<_, String>(())
        }
        .await;
        let server_result = server_task.await.expect("server task");
        client_result?;
        server_result
    }

    #[tokio::test]
    async fn client_certificate_is_optional_but_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("test CA");
        write_node_certs(dir.path(), &ca);
        let server = load_server_tls(dir.path()).expect("load");
        let ca_pem = ca.issuer.pem();

        // No client certificate: accepted, no CN.
        let cn = handshake(server.clone(), &ca_pem, None, None).await;
        assert_eq!(cn, Ok(None));

        // A certificate from our CA: accepted, CN visible to the server.
        let client = ca.leaf("root", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let cn = handshake(server.clone(), &ca_pem, Some(client), Some(b"postgresql")).await;
        assert_eq!(cn, Ok(Some("root".to_string())));

        // A certificate from another CA: the handshake fails.
        let rogue = Ca::new("rogue CA").leaf("root", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let result = handshake(server.clone(), &ca_pem, Some(rogue), None).await;
        assert!(result.is_err(), "{result:?}");

        // A client insisting on another ALPN protocol is refused.
        let result = handshake(server, &ca_pem, None, Some(b"http/1.1")).await;
        assert!(result.is_err(), "{result:?}");
    }
}
