//! TLS negotiation and certificate / password authentication against an
//! in-process server in secure mode, with a minimal raw-protocol client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use duet_server::config::{AuthMethod, ConnType, HbaRule};
use duet_server::{Config, Server, ServerHandle};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "duet test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("ca cert"),
        }
    }

    /// (cert PEM, key PEM) of a leaf signed by this CA.
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

    fn write_node_certs(&self, dir: &Path) {
        let (cert, key) = self.leaf(
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        std::fs::write(dir.join("ca.crt"), self.issuer.pem()).expect("ca");
        std::fs::write(dir.join("node.crt"), cert).expect("cert");
        std::fs::write(dir.join("node.key"), key).expect("key");
    }
}

struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<()>,
    ca: Ca,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let ca = Ca::new();
        ca.write_node_certs(&certs);
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            certs_dir: certs,
            insecure: false,
            root_password: Some(duet_server::config::Secret("s3cret".into())),
            http_listen: String::new(),
            ..Config::default()
        };
        tweak(&mut config);
        let server = Server::bind(config).await.expect("server starts");
        let addr = server.local_addr();
        let handle = server.handle();
        let task = tokio::spawn(async move {
            server
                .serve_until(std::future::pending())
                .await
                .expect("server runs");
        });
        TestServer {
            addr,
            handle,
            task,
            ca,
            _dir: dir,
        }
    }

    fn tls_config(&self, client_cn: Option<&str>) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.issuer.der().clone()).expect("add root");
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        match client_cn {
            Some(cn) => {
                let (cert, key) = self.ca.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth);
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain");
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        }
    }

    /// TCP connection upgraded to TLS through SSLRequest.
    async fn tls_connect(
        &self,
        client_cn: Option<&str>,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut tcp = TcpStream::connect(self.addr).await.expect("connect");
        tcp.write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
            .await
            .expect("SSLRequest");
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.expect("SSL answer");
        assert_eq!(answer[0], b'S', "server accepts TLS");
        TlsConnector::from(Arc::new(self.tls_config(client_cn)))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("TLS handshake")
    }

    async fn stop(self) {
        self.handle.shutdown();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
    }
}

async fn send_startup<S: AsyncWrite + Unpin>(stream: &mut S, user: &str) {
    let params = format!("user\0{user}\0database\0defaultdb\0\0");
    let mut msg = Vec::new();
    msg.extend_from_slice(&((8 + params.len()) as i32).to_be_bytes());
    msg.extend_from_slice(&196608i32.to_be_bytes());
    msg.extend_from_slice(params.as_bytes());
    stream.write_all(&msg).await.expect("startup");
}

/// The next backend message; None at EOF.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut header))
        .await
        .expect("answer in time")
        .ok()?;
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await.ok()?;
    Some((header[0], body))
}

/// Reads until ReadyForQuery or ErrorResponse; returns the messages.
async fn read_to_ready_or_error<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((t, body)) = read_message(stream).await {
        out.push((t, body));
        if t == b'Z' || t == b'E' {
            break;
        }
        if t == b'R' && out.last().map(|(_, b)| auth_code(b)) != Some(0) {
            // an authentication request: the caller answers it
            break;
        }
    }
    out
}

fn auth_code(body: &[u8]) -> i32 {
    i32::from_be_bytes([body[0], body[1], body[2], body[3]])
}

fn error_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\0', "|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_certificate_authenticates_root() {
    let server = TestServer::start(|_| {}).await;
    let mut tls = server.tls_connect(Some("root")).await;
    send_startup(&mut tls, "root").await;
    let msgs = read_to_ready_or_error(&mut tls).await;
    let types: Vec<u8> = msgs.iter().map(|(t, _)| *t).collect();
    assert_eq!(types.first(), Some(&b'R'), "{types:?}");
    assert_eq!(
        auth_code(&msgs[0].1),
        0,
        "AuthenticationOk without a password"
    );
    assert_eq!(types.last(), Some(&b'Z'), "{types:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificate_for_another_user_is_refused() {
    let server = TestServer::start(|_| {}).await;
    let mut tls = server.tls_connect(Some("alice")).await;
    send_startup(&mut tls, "root").await;
    let msgs = read_to_ready_or_error(&mut tls).await;
    let (t, body) = msgs.last().expect("a message");
    assert_eq!(*t, b'E');
    let text = error_text(body);
    assert!(text.contains("28000"), "{text}");
    assert!(
        text.contains("certificate authentication failed for user \"root\""),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_certificate_falls_back_to_scram() {
    let server = TestServer::start(|_| {}).await;
    let mut tls = server.tls_connect(None).await;
    send_startup(&mut tls, "root").await;
    let (t, body) = read_message(&mut tls).await.expect("auth request");
    assert_eq!(t, b'R');
    assert_eq!(auth_code(&body), 10, "AuthenticationSASL");
    assert!(String::from_utf8_lossy(&body).contains("SCRAM-SHA-256"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plaintext_matches_no_default_rule() {
    let server = TestServer::start(|_| {}).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    send_startup(&mut tcp, "root").await;
    let (t, body) = read_message(&mut tcp).await.expect("an answer");
    assert_eq!(t, b'E');
    let text = error_text(&body);
    assert!(text.contains("28000"), "{text}");
    assert!(text.contains("no pg_hba.conf entry"), "{text}");
    assert!(text.contains("no encryption"), "{text}");
    server.stop().await;
}

async fn password_login(server: &TestServer, password: &str) -> Vec<(u8, Vec<u8>)> {
    let mut tls = server.tls_connect(None).await;
    send_startup(&mut tls, "root").await;
    let (t, body) = read_message(&mut tls).await.expect("auth request");
    assert_eq!(t, b'R');
    assert_eq!(auth_code(&body), 3, "AuthenticationCleartextPassword");
    let mut msg = vec![b'p'];
    msg.extend_from_slice(&((4 + password.len() + 1) as i32).to_be_bytes());
    msg.extend_from_slice(password.as_bytes());
    msg.push(0);
    tls.write_all(&msg).await.expect("password");
    read_to_ready_or_error(&mut tls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleartext_password_over_tls() {
    let server = TestServer::start(|c| {
        c.hba = vec![HbaRule {
            conn_type: ConnType::Hostssl,
            database: "all".into(),
            user: "all".into(),
            address: "all".into(),
            method: AuthMethod::Password,
        }];
    })
    .await;
    let msgs = password_login(&server, "s3cret").await;
    assert_eq!(msgs.last().map(|(t, _)| *t), Some(b'Z'));

    let msgs = password_login(&server, "wrong").await;
    let (t, body) = msgs.last().expect("a message");
    assert_eq!(*t, b'E');
    let text = error_text(body);
    assert!(text.contains("28P01"), "{text}");
    assert!(
        text.contains("password authentication failed for user \"root\""),
        "{text}"
    );
    server.stop().await;
}
