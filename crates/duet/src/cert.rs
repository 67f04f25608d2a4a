//! `duet cert`: a small CA for a duet deployment. Keys are ECDSA P-256 in
//! PKCS#8 PEM, written with mode 0600 (libpq refuses group- or
//! world-readable key files).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{Datelike, Months, NaiveDate, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, PKCS_ECDSA_P256_SHA256,
};

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const NODE_CERT: &str = "node.crt";
const NODE_KEY: &str = "node.key";

/// Validity in months: long enough not to bite a test cluster, short enough
/// that a leaked key does not stay valid forever.
const CA_MONTHS: u32 = 10 * 12;
const LEAF_MONTHS: u32 = 5 * 12;

/// Creates `ca.crt` and `ca.key`; returns the files written.
pub fn create_ca(dir: &Path, overwrite: bool) -> anyhow::Result<Vec<PathBuf>> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    refuse_existing(&[&cert_path, &key_path], overwrite)?;

    let mut params = CertificateParams::default();
    params.distinguished_name = name("duet CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_MONTHS)?;
    let key = new_key()?;
    let cert = params
        .self_signed(&key)
        .context("cannot create the CA certificate")?;

    create_dir(dir)?;
    write_key(&key_path, &key.serialize_pem())?;
    write_cert(&cert_path, &cert.pem())?;
    Ok(vec![cert_path, key_path])
}

/// Creates `node.crt` and `node.key` for `hosts` (DNS names or IP
/// addresses), signed by the CA in `dir`.
pub fn create_node(dir: &Path, hosts: &[String], overwrite: bool) -> anyhow::Result<Vec<PathBuf>> {
    let Some(first) = hosts.first() else {
        bail!("create-node needs at least one HOST (a DNS name or IP address clients use to reach this node)");
    };
    let (cert_path, key_path) = (dir.join(NODE_CERT), dir.join(NODE_KEY));
    refuse_existing(&[&cert_path, &key_path], overwrite)?;
    let issuer = load_ca(dir)?;

    let mut params = CertificateParams::default();
    params.subject_alt_names = hosts
        .iter()
        .map(|h| san(h))
        .collect::<anyhow::Result<_>>()?;
    params.distinguished_name = name(first.trim_start_matches('[').trim_end_matches(']'));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // ClientAuth too: a node also connects to its primary as a client.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_MONTHS)?;
    let key = new_key()?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the node certificate")?;

    write_key(&key_path, &key.serialize_pem())?;
    write_cert(&cert_path, &cert.pem())?;
    Ok(vec![cert_path, key_path])
}

/// Creates `client.USER.crt` and `client.USER.key` (CN = USER), signed by
/// the CA in `dir`.
pub fn create_client(dir: &Path, user: &str, overwrite: bool) -> anyhow::Result<Vec<PathBuf>> {
    // The user name becomes part of a file name.
    if user.is_empty() || user == "." || user == ".." || user.contains(['/', '\\', '\0']) {
        bail!("invalid user name {user:?} for a client certificate file name");
    }
    let cert_path = dir.join(format!("client.{user}.crt"));
    let key_path = dir.join(format!("client.{user}.key"));
    refuse_existing(&[&cert_path, &key_path], overwrite)?;
    let issuer = load_ca(dir)?;

    let mut params = CertificateParams::default();
    params.distinguished_name = name(user);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_MONTHS)?;
    let key = new_key()?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the client certificate")?;

    write_key(&key_path, &key.serialize_pem())?;
    write_cert(&cert_path, &cert.pem())?;
    Ok(vec![cert_path, key_path])
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "duet");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn new_key() -> anyhow::Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("cannot generate an ECDSA P-256 key")
}

/// A subject alternative name: an IP address (also written `[::1]`) or a
/// DNS name, which is what libpq's verify-full compares the host with.
fn san(host: &str) -> anyhow::Result<SanType> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = host
        .to_string()
        .try_into()
        .with_context(|| format!("invalid host name {host:?}"))?;
    Ok(SanType::DnsName(dns))
}

/// From yesterday (tolerates clock skew between hosts) for `months`.
fn set_validity(params: &mut CertificateParams, months: u32) -> anyhow::Result<()> {
    let start = Utc::now()
        .date_naive()
        .pred_opt()
        .context("date out of range")?;
    let end = start
        .checked_add_months(Months::new(months))
        .context("date out of range")?;
    let (y, m, d) = ymd(start)?;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(end)?;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    Ok(())
}

fn ymd(date: NaiveDate) -> anyhow::Result<(i32, u8, u8)> {
    let month = u8::try_from(date.month()).context("month out of range")?;
    let day = u8::try_from(date.day()).context("day out of range")?;
    Ok((date.year(), month, day))
}

/// The CA in `dir` as an issuer, after checking that ca.key belongs to
/// ca.crt (a mismatch would produce certificates that never verify).
fn load_ca(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let create_ca = format!("duet cert create-ca --certs-dir {}", dir.display());
    for path in [&cert_path, &key_path] {
        if !path.exists() {
            bail!(
                "{} not found: create the CA first with \"{create_ca}\"",
                path.display()
            );
        }
    }
    let cert_pem = std::fs::read_to_string(&cert_path)
        .with_context(|| format!("cannot read {}", cert_path.display()))?;
    let key_pem = std::fs::read_to_string(&key_path)
        .with_context(|| format!("cannot read {}", key_path.display()))?;
    let key = KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{} is not a valid private key", key_path.display()))?;

    let der = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate: {e}", cert_path.display()))?
        .1
        .contents;
    let (_, ca) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow::anyhow!("{} is not a valid certificate: {e}", cert_path.display()))?;
    if ca.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
        bail!(
            "{} does not belong to {}: re-create the CA with \"{create_ca} --overwrite\"",
            key_path.display(),
            cert_path.display()
        );
    }
    Issuer::from_ca_cert_der(&der.as_slice().into(), key)
        .with_context(|| format!("{} cannot be used as a CA", cert_path.display()))
}

fn refuse_existing(paths: &[&Path], overwrite: bool) -> anyhow::Result<()> {
    if overwrite {
        return Ok(());
    }
    for path in paths {
        if path.exists() {
            bail!(
                "{} already exists; pass --overwrite to replace it",
                path.display()
            );
        }
    }
    Ok(())
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn write_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    write_atomic(path, pem.as_bytes(), 0o600)
}

fn write_cert(path: &Path, pem: &str) -> anyhow::Result<()> {
    write_atomic(path, pem.as_bytes(), 0o644)
}

/// Writes via a temporary file and rename, so a crash never leaves a
/// half-written file, and the file has `mode` from its first byte on.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    // A stale temporary file could carry looser permissions; start afresh.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", tmp.display())),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let write = || -> std::io::Result<()> {
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        // The umask may have narrowed the mode; keys must be exactly 0600
        // and certificates readable.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_kinds() {
        assert_eq!(
            san("127.0.0.1").expect("ip"),
            SanType::IpAddress("127.0.0.1".parse().expect("ip"))
        );
        assert_eq!(
            san("[::1]").expect("ip"),
            SanType::IpAddress("::1".parse().expect("ip"))
        );
        assert!(matches!(
            san("db.example.com").expect("dns"),
            SanType::DnsName(_)
        ));
        assert!(san("bücher.example").is_err());
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        create_ca(dir.path(), false).expect("ca");
        let err = create_ca(dir.path(), false).expect_err("exists");
        assert!(err.to_string().contains("--overwrite"), "{err}");
        create_ca(dir.path(), true).expect("overwrite");
    }

    #[test]
    fn leaf_needs_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = create_node(dir.path(), &["localhost".into()], false).expect_err("no ca");
        assert!(
            err.to_string().contains("duet cert create-ca --certs-dir"),
            "{err}"
        );
        let err = create_client(dir.path(), "../x", false).expect_err("bad user");
        assert!(err.to_string().contains("invalid user name"), "{err}");
    }

    #[test]
    fn mismatched_ca_key_is_rejected() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        create_ca(a.path(), false).expect("ca a");
        create_ca(b.path(), false).expect("ca b");
        std::fs::copy(b.path().join(CA_KEY), a.path().join(CA_KEY)).expect("copy");
        let err = create_client(a.path(), "root", false).expect_err("mismatch");
        assert!(err.to_string().contains("does not belong to"), "{err}");
    }

    #[test]
    fn generated_files_load_as_server_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        create_ca(dir.path(), false).expect("ca");
        create_node(dir.path(), &["localhost".into(), "127.0.0.1".into()], false).expect("node");
        create_client(dir.path(), "root", false).expect("client");
        duet_server::tls::load_server_tls(dir.path()).expect("server tls");
        let pem = std::fs::read(dir.path().join("client.root.crt")).expect("read");
        let der = x509_parser::pem::parse_x509_pem(&pem)
            .expect("pem")
            .1
            .contents;
        assert_eq!(
            duet_server::tls::client_cert_common_name(&der).as_deref(),
            Some("root")
        );
        let key = std::fs::read_to_string(dir.path().join("client.root.key")).expect("read");
        assert!(
            key.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8: {key}"
        );
    }
}
