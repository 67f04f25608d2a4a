//! Startup errors that name the fix: certificates that are missing,
//! unreadable or not valid for the listen address, a data directory
//! another process holds, a port in use. The server's own errors are
//! typed; here they get what only the command line knows (which flag,
//! which host, which process).

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use duet_server::tls::{TlsError, CA_CERT_FILE, NODE_CERT_FILE};
use duet_server::{Config, ServerError};

/// What the error messages need of the configuration after `config` has
/// been handed to the server.
#[derive(Debug, Clone)]
pub struct Startup {
    pub listen: String,
    pub http_listen: String,
    pub data_dir: PathBuf,
    pub certs_dir: PathBuf,
}

impl Startup {
    pub fn of(config: &Config) -> Startup {
        Startup {
            listen: config.listen.clone(),
            http_listen: config.http_listen.clone(),
            data_dir: config.data_dir.clone(),
            certs_dir: config.certs_dir.clone(),
        }
    }
}

const INSECURE: &str = "or pass --insecure for local development without TLS";

/// The host part of HOST:PORT (IPv6 without brackets).
fn listen_host(listen: &str) -> &str {
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn is_unspecified(host: &str) -> bool {
    host.is_empty() || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// The HOST arguments to suggest for `duet cert create-node`.
fn suggested_hosts(listen: &str) -> String {
    match listen_host(listen) {
        host if is_unspecified(host) => {
            let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            match name.trim() {
                "" | "localhost" => "localhost 127.0.0.1".into(),
                name => format!("{name} localhost 127.0.0.1"),
            }
        }
        "127.0.0.1" | "localhost" => "localhost 127.0.0.1".into(),
        host => host.to_string(),
    }
}

/// A TLS loading error with the command that fixes it.
pub fn explain_tls(e: TlsError, s: &Startup) -> anyhow::Error {
    let dir = s.certs_dir.display();
    let hosts = suggested_hosts(&s.listen);
    let create_node = format!("duet cert create-node {hosts} --certs-dir {dir}");
    let fix_for = |path: &Path| {
        if path.file_name().and_then(|n| n.to_str()) == Some(CA_CERT_FILE) {
            format!(
                "copy ca.crt of your CA into {dir}, or create a new CA with \
                 \"duet cert create-ca --certs-dir {dir}\" (then re-create node.crt)"
            )
        } else {
            format!("re-create it with \"{create_node} --overwrite\" (needs ca.key of the CA)")
        }
    };
    match e {
        TlsError::NotFound { path, .. } => {
            if path.file_name().and_then(|n| n.to_str()) == Some(CA_CERT_FILE) {
                anyhow!(
                    "certificate file {} not found: a secure node needs ca.crt, node.crt and \
                     node.key in {dir}; create them with \"duet cert create-ca --certs-dir {dir}\" \
                     and \"{create_node}\" (or copy them from the machine that holds your CA); \
                     {INSECURE}",
                    path.display()
                )
            } else {
                anyhow!(
                    "certificate file {} not found: create the node certificate with \
                     \"{create_node}\" (signed with ca.key of the CA in {dir}); {INSECURE}",
                    path.display()
                )
            }
        }
        TlsError::Read { path, source }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            anyhow!(
                "cannot read {}: permission denied; make it readable by the user duet runs as \
                 ({}), e.g. with chown, and keep keys at mode 0600",
                path.display(),
                process_user()
            )
        }
        TlsError::Read { path, source } => anyhow!(
            "cannot read {}: {source}; it must be a readable PEM file: {}",
            path.display(),
            fix_for(&path)
        ),
        TlsError::Pem { ref path, .. } | TlsError::Empty { ref path, .. } => {
            let fix = fix_for(path);
            anyhow!("{e}; {fix}")
        }
        other => anyhow!("{other}; {INSECURE}"),
    }
}

/// "uid N" of this process, read without libc: /proc/self belongs to it.
fn process_user() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return format!("uid {}", meta.uid());
        }
    }
    "this process's user".into()
}

/// A subject alternative name of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Dns(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Dns(name) => f.write_str(name),
            Name::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The DNS and IP names of the first certificate in a PEM file; None if
/// it cannot be parsed (loading TLS has already checked that it can).
fn certificate_names(pem: &[u8]) -> Option<Vec<Name>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let names = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(Name::Dns(dns.to_string())),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| Name::Ip(b.into())),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| Name::Ip(b.into())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    Some(names)
}

/// A DNS name matches a certificate name, `*.` wildcards standing for one
/// label (as rustls checks).
fn dns_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// Addresses `names` resolve to (the system resolver, /etc/hosts first);
/// None if resolving takes longer than `limit`.
fn resolve(names: Vec<String>, limit: Duration) -> Option<Vec<IpAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ips: Vec<IpAddr> = names
            .iter()
            .filter_map(|name| (name.as_str(), 0).to_socket_addrs().ok())
            .flatten()
            .map(|addr| addr.ip())
            .collect();
        let _ = tx.send(ips);
    });
    rx.recv_timeout(limit).ok()
}

/// Whether a certificate with `names` is valid for clients that reach the
/// node at `host`. Some(true/false), or None when DNS did not answer in time.
fn covers(names: &[Name], host: &str) -> Option<bool> {
    let limit = Duration::from_secs(3);
    let dns: Vec<String> = names
        .iter()
        .filter_map(|n| match n {
            Name::Dns(d) if !d.starts_with('*') => Some(d.clone()),
            _ => None,
        })
        .collect();
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            if names.contains(&Name::Ip(ip)) {
                return Some(true);
            }
            // Clients may use a name that resolves to the address.
            Some(resolve(dns, limit)?.contains(&ip))
        }
        Err(_) => {
            if names
                .iter()
                .any(|n| matches!(n, Name::Dns(d) if dns_matches(d, host)))
            {
                return Some(true);
            }
            let ips = resolve(vec![host.to_string()], limit)?;
            Some(
                names
                    .iter()
                    .any(|n| matches!(n, Name::Ip(ip) if ips.contains(ip))),
            )
        }
    }
}

/// Refuses a node certificate that does not name the host the node
/// listens on (a wildcard address is not checked: clients may use any of
/// the host's names).
pub fn check_certificate_host(s: &Startup) -> anyhow::Result<()> {
    let host = listen_host(&s.listen);
    if is_unspecified(host) {
        return Ok(());
    }
    let path = s.certs_dir.join(NODE_CERT_FILE);
    let Some(names) = std::fs::read(&path)
        .ok()
        .and_then(|pem| certificate_names(&pem))
    else {
        return Ok(());
    };
    match covers(&names, host) {
        Some(false) => {}
        Some(true) => return Ok(()),
        None => {
            tracing::warn!(
                host,
                "could not check that node.crt names the listen host: DNS did not answer in time"
            );
            return Ok(());
        }
    }
    let listed: Vec<String> = names.iter().map(Name::to_string).collect();
    // The listen host first, then the names the certificate has now.
    let mut hosts: Vec<String> = suggested_hosts(&s.listen)
        .split(' ')
        .map(str::to_owned)
        .collect();
    for name in &listed {
        if !hosts.contains(name) {
            hosts.push(name.clone());
        }
    }
    Err(anyhow!(
        "node certificate {} is not valid for the listen address {host}: it names {}, so \
         clients connecting to {host} with sslmode=verify-full would reject it; re-create it \
         with every name clients use: \"duet cert create-node {} --certs-dir {} --overwrite\"",
        path.display(),
        if listed.is_empty() {
            "no host at all".to_string()
        } else {
            listed.join(", ")
        },
        hosts.join(" "),
        s.certs_dir.display()
    ))
}

/// The process holding a POSIX lock on `file`, from /proc/locks (RocksDB
/// locks its LOCK file with fcntl): pid and command name.
#[cfg(target_os = "linux")]
fn lock_holder(file: &Path) -> Option<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).ok()?;
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid: u32 = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: POSIX  ADVISORY  WRITE 7097 fe:00:10076674 0 EOF"
        let at = fields.iter().position(|f| *f == id)?;
        fields.get(at.checked_sub(1)?)?.parse().ok()
    })?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some((pid, name.trim().to_string()))
}

#[cfg(not(target_os = "linux"))]
fn lock_holder(_file: &Path) -> Option<(u32, String)> {
    None
}

/// Who holds a RocksDB directory of the data directory, if anyone.
fn data_dir_holder(data_dir: &Path) -> Option<(u32, String)> {
    let entries = std::fs::read_dir(data_dir).ok()?;
    entries
        .flatten()
        .map(|entry| entry.path().join("LOCK"))
        .filter(|lock| lock.is_file())
        .find_map(|lock| lock_holder(&lock))
        .filter(|(pid, _)| *pid != std::process::id())
}

/// A server error with what only the command line knows added.
pub fn explain_server_error(e: ServerError, s: &Startup) -> anyhow::Error {
    match e {
        ServerError::AddressInUse { addr } => {
            let (what, flag, key, check) = if addr == s.http_listen && addr != s.listen {
                (
                    "HTTP",
                    "--http-listen",
                    "http_listen",
                    format!("curl http://{addr}/health"),
                )
            } else {
                (
                    "SQL",
                    "--listen",
                    "listen",
                    format!("duet status --url postgresql://root@{addr}/defaultdb"),
                )
            };
            anyhow!(
                "the {what} address {addr} is already in use: another duet node or another \
                 program listens there ({check} tells whether it is a duet node); stop it, or \
                 give this node a free port with {flag} HOST:PORT (or {key} in the config file)"
            )
        }
        ServerError::Database { dir, cause } => {
            let holder = data_dir_holder(&s.data_dir);
            let locked = cause.to_string().contains("locked by another");
            match holder {
                Some((pid, name)) => {
                    anyhow!(
                    "the data directory {dir} is in use by another duet process (pid {pid}{}): a \
                     data directory belongs to one running node; stop that process first, or \
                     give this node its own directory with --data-dir",
                    if name.is_empty() { String::new() } else { format!(", {name}") }
                )
                }
                None if locked => anyhow!(
                    "the data directory {dir} is in use by another duet process: a data \
                     directory belongs to one running node; stop that process first, or give \
                     this node its own directory with --data-dir"
                ),
                None => anyhow!("{}", ServerError::Database { dir, cause }),
            }
        }
        other => anyhow!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_names() {
        assert_eq!(listen_host("127.0.0.1:26257"), "127.0.0.1");
        assert_eq!(listen_host("[::1]:26257"), "::1");
        assert_eq!(listen_host("db1.example.com:1"), "db1.example.com");
        assert!(is_unspecified("0.0.0.0") && is_unspecified("::"));
        assert_eq!(suggested_hosts("127.0.0.1:26257"), "localhost 127.0.0.1");
        assert_eq!(suggested_hosts("10.1.2.3:26257"), "10.1.2.3");
        assert!(dns_matches("*.example.com", "db1.example.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(dns_matches("DB1.example.com", "db1.EXAMPLE.com"));
    }

    #[test]
    fn unreadable_certificate_names_the_fix() {
        let startup = Startup {
            listen: "127.0.0.1:26257".into(),
            http_listen: String::new(),
            data_dir: "d".into(),
            certs_dir: "certs".into(),
        };
        let denied = TlsError::Read {
            path: "certs/node.key".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let text = explain_tls(denied, &startup).to_string();
        assert!(
            text.starts_with("cannot read certs/node.key: permission denied; make it readable")
                && text.contains("0600"),
            "{text}"
        );
    }

    #[test]
    fn coverage_by_address_and_by_name() {
        let names = vec![
            Name::Dns("localhost".into()),
            Name::Ip("10.0.0.5".parse().expect("ip")),
        ];
        assert_eq!(covers(&names, "10.0.0.5"), Some(true));
        // localhost resolves to the loopback address.
        assert_eq!(covers(&names, "127.0.0.1"), Some(true));
        assert_eq!(covers(&names, "127.0.0.2"), Some(false));
        assert_eq!(covers(&names, "LOCALHOST"), Some(true));
    }
}
