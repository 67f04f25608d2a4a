//! Tests of the client (`client.rs`) and its TLS setup (`tls.rs`), without a
//! real server: URL to TLS configuration, and a fake primary on a socket.
use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CA, a server certificate for `primary.test` and a client
/// certificate for `root`, as PEM files in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

fn write(dir: &Path, name: &str, pem: String) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert, Issuer::new(params, key))
    };
    let (ca_cert, issuer) = ca("duet test CA");
    write(dir.path(), "ca.crt", ca_cert.pem());
    write(dir.path(), "other-ca.crt", ca("another CA").0.pem());
    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        (params.signed_by(&key, &issuer).unwrap(), key)
    };
    let (client, client_key) = leaf(vec![], "root");
    write(dir.path(), "client.root.crt", client.pem());
    write(dir.path(), "client.root.key", client_key.serialize_pem());
    write(dir.path(), "garbage.crt", "not a certificate".into());
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    write(dir.path(), "other.key", other_key);
    let (server, server_key) = leaf(vec!["primary.test".into()], "node");
    let key = PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).unwrap();
    Pki {
        dir,
        server: (vec![server.der().clone()], key),
    }
}

impl Pki {
    fn url(&self, host: &str, params: &str) -> PrimaryUrl {
        let params = params.replace("DIR", &self.dir.path().display().to_string());
        PrimaryUrl::parse(&format!(
            "postgresql://root@{host}:26257/defaultdb?{params}"
        ))
        .unwrap()
    }

    fn server_config(&self, client_auth: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = RootCertStore::empty();
            let ca = self.dir.path().join("ca.crt");
            roots
                .add(CertificateDer::from_pem_file(ca).unwrap())
                .unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            builder.with_client_cert_verifier(verifier.build().unwrap())
        } else {
            builder.with_no_client_auth()
        };
        let (chain, key) = (self.server.0.clone(), self.server.1.clone_key());
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }

    /// A TLS handshake over an in-memory pipe; Ok(CN of the client
    /// certificate the server saw, if any).
    async fn handshake(&self, url: &PrimaryUrl, client_auth: bool) -> Result<bool, String> {
        let connector = tls_connector(url).map_err(|e| e.to_string())?.unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server_config(client_auth));
        let server = tokio::spawn(async move {
            let mut tls = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let saw_cert = tls.get_ref().1.peer_certificates().is_some();
            tls.write_all(b"x").await.map_err(|e| e.to_string())?;
            Ok::<_, String>(saw_cert)
        });
        let name = ServerName::try_from(url.host.clone()).unwrap();
        let client = connector.connect(name, client_io).await;
        let mut client = client.map_err(|e| format!("client: {e}"))?;
        let mut byte = [0u8; 1];
        let read = client.read_exact(&mut byte).await;
        let saw_cert = server.await.unwrap().map_err(|e| format!("server: {e}"))?;
        read.map_err(|e| format!("client read: {e}"))?;
        Ok(saw_cert)
    }
}

#[tokio::test]
async fn tls_modes_verify_what_they_promise() {
    let pki = pki();
    let full = "sslmode=verify-full&sslrootcert=DIR/ca.crt";
    assert_eq!(
        pki.handshake(&pki.url("primary.test", full), false).await,
        Ok(false)
    );
    let err = pki
        .handshake(&pki.url("other.test", full), false)
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name \"other.test\""), "{err}");
    // verify-ca checks the chain only
    let ca = "sslmode=verify-ca&sslrootcert=DIR/ca.crt";
    assert!(pki
        .handshake(&pki.url("other.test", ca), false)
        .await
        .is_ok());
    let wrong_ca = "sslmode=verify-ca&sslrootcert=DIR/other-ca.crt";
    let err = pki
        .handshake(&pki.url("primary.test", wrong_ca), false)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    // require (and prefer) accept any certificate
    assert!(pki
        .handshake(&pki.url("127.0.0.1", "sslmode=require"), false)
        .await
        .is_ok());
    assert!(tls_connector(&pki.url("h", "sslmode=disable"))
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn client_certificate_is_presented() {
    let pki = pki();
    let kwdb = "sslmode=verify-ca&sslcert=DIR/client.root.crt&sslkey=DIR/client.root.key&sslrootcert=DIR/ca.crt";
    assert_eq!(
        pki.handshake(&pki.url("localhost", kwdb), true).await,
        Ok(true)
    );
    let without = pki
        .handshake(&pki.url("localhost", "sslmode=require"), true)
        .await;
    assert!(without.is_err(), "{without:?}");
}

#[test]
fn unreadable_certificate_files_are_named() {
    let pki = pki();
    let cases = [
        (
            "sslmode=verify-ca&sslrootcert=DIR/missing.crt",
            "sslrootcert",
            "missing.crt",
        ),
        (
            "sslmode=verify-ca&sslrootcert=DIR/garbage.crt",
            "sslrootcert",
            "garbage.crt",
        ),
        (
            "sslmode=require&sslcert=DIR/nope.crt&sslkey=DIR/client.root.key",
            "sslcert",
            "nope.crt",
        ),
        (
            "sslmode=require&sslcert=DIR/client.root.crt&sslkey=DIR/ca.crt",
            "sslkey",
            "ca.crt: no PEM private key",
        ),
        (
            "sslmode=require&sslcert=DIR/client.root.crt&sslkey=DIR/other.key",
            "sslkey",
            "other.key: unusable with sslcert",
        ),
    ];
    for (params, param, file) in cases {
        let err = tls_connector(&pki.url("h", params)).err().unwrap();
        assert_eq!(err.step(), "certificate");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot use {param} file ")),
            "{text}"
        );
        assert!(text.contains(file), "{text}");
    }
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(((body.len() + 4) as i32).to_be_bytes());
    out.extend(body);
    out
}

fn error_response(code: &str, text: &str) -> Vec<u8> {
    let body = format!("SFATAL\0C{code}\0M{text}\0\0");
    message(b'E', body.as_bytes())
}

async fn read_body(socket: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut body = vec![0; len];
    socket.read_exact(&mut body).await.unwrap();
    body
}

/// A minimal primary: refuses TLS, records the startup parameters,
/// answers `reject` to the startup or else AuthenticationOk, then
/// answers each Query with one row ("1", NULL) or, for "bad", an error.
async fn fake_primary(reject: Option<Vec<u8>>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let params = loop {
            let Ok(len) = socket.read_i32().await else {
                return vec![]; // the client gave up after the TLS refusal
            };
            let body = read_body(&mut socket, len as usize - 4).await;
            if body[..4] == 80877103i32.to_be_bytes() {
                socket.write_all(b"N").await.unwrap();
                continue;
            }
            let text = String::from_utf8(body[4..].to_vec()).unwrap();
            break text
                .split('\0')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        };
        if let Some(reject) = reject {
            socket.write_all(&reject).await.unwrap();
            return params;
        }
        let mut out = message(b'R', &0i32.to_be_bytes());
        out.extend(message(b'S', b"in_hot_standby\0off\0"));
        out.extend(message(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
        out.extend(message(b'Z', b"I"));
        socket.write_all(&out).await.unwrap();
        while let Ok(tag) = socket.read_u8().await {
            let len = socket.read_i32().await.unwrap() as usize;
            let body = read_body(&mut socket, len - 4).await;
            if tag != b'Q' {
                break;
            }
            let mut out = if body.starts_with(b"bad") {
                error_response("42P01", "relation \"nope\" does not exist")
            } else {
                let mut fields = 2i16.to_be_bytes().to_vec();
                for name in [&b"a\0"[..], b"b\0"] {
                    fields.extend(name);
                    fields.extend([0u8; 18]);
                }
                let mut row = 2i16.to_be_bytes().to_vec();
                row.extend(1i32.to_be_bytes());
                row.extend(b"1");
                row.extend((-1i32).to_be_bytes());
                let mut out = message(b'T', &fields);
                out.extend(message(b'D', &row));
                out.extend(message(b'C', b"SELECT 1\0"));
                out
            };
            out.extend(message(b'Z', b"I"));
            socket.write_all(&out).await.unwrap();
        }
        params
    });
    (port, task)
}

#[tokio::test]
async fn replication_startup_and_simple_query() {
    let (port, server) = fake_primary(None).await;
    let url = PrimaryUrl::parse(&format!(
        "postgresql://repl@127.0.0.1:{port}/app?sslmode=prefer"
    ))
    .unwrap();
    let mut conn = connect(&url, true).await.unwrap();
    assert_eq!(conn.server_parameter("in_hot_standby"), Some("off"));
    assert_eq!(conn.process_id(), 7);
    let rows = conn.simple_query("SELECT 1, NULL").await.unwrap();
    assert_eq!(rows, vec![vec![Some("1".to_string()), None]]);
    let err = conn.simple_query("bad").await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P01"));
    assert_eq!(err.step(), "server");
    // the connection is still usable after an error
    assert_eq!(conn.simple_query("SELECT 1").await.unwrap().len(), 1);
    let result = conn.query("SELECT 1 AS a, NULL AS b").await.unwrap();
    assert_eq!(result.columns, ["a", "b"]);
    assert_eq!((result.get(0, "a"), result.get(0, "b")), (Some("1"), None));
    assert_eq!((result.get(0, "c"), result.get(1, "a")), (None, None));
    conn.close().await.unwrap();
    let params = server.await.unwrap();
    for pair in [
        ["user", "repl"],
        ["database", "app"],
        ["application_name", DEFAULT_APPLICATION_NAME],
        ["replication", "database"],
    ] {
        assert!(
            params.windows(2).any(|w| w == pair),
            "{pair:?} not in {params:?}"
        );
    }
}

#[tokio::test]
async fn each_failing_step_is_named() {
    let rejection = error_response("28P01", "password authentication failed for user \"root\"");
    let (port, _server) = fake_primary(Some(rejection)).await;
    let url = PrimaryUrl::parse(&format!(
        "postgresql://root:hunter2@127.0.0.1:{port}?sslmode=disable&application_name=s2"
    ))
    .unwrap();
    let err = connect(&url, false).await.err().unwrap();
    assert_eq!((err.step(), err.sqlstate()), ("auth", Some("28P01")));
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    let (port, _server) = fake_primary(Some(error_response("3D000", "no such db"))).await;
    let url = PrimaryUrl::parse(&format!("postgresql://127.0.0.1:{port}?sslmode=disable")).unwrap();
    let err = connect(&url, false).await.err().unwrap();
    assert_eq!((err.step(), err.sqlstate()), ("server", Some("3D000")));

    // TLS required but refused by the primary
    let (port, _server) = fake_primary(None).await;
    let url = PrimaryUrl::parse(&format!("postgresql://127.0.0.1:{port}?sslmode=require")).unwrap();
    let err = connect(&url, false).await.err().unwrap();
    assert_eq!(err.step(), "tls", "{err}");

    // nothing listening
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = PrimaryUrl::parse(&format!("postgresql://127.0.0.1:{port}?sslmode=disable")).unwrap();
    let err = connect(&url, false).await.err().unwrap();
    assert_eq!(err.step(), "connect");
    assert!(err
        .to_string()
        .starts_with(&format!("cannot reach primary at 127.0.0.1:{port}: ")));
}
