//! The primary's address as given to `REPLICATE SET PRIMARY` (SPEC 4.2): a
//! libpq connection URL such as KWDB writes it, e.g.
//! `postgresql://root@localhost:26257/defaultdb?sslmode=verify-ca&sslcert=./certs/client.root.crt&sslkey=./certs/client.root.key&sslrootcert=./certs/ca.crt`.
//!
//! The password never leaves this type by accident: `Debug`, `Display` and
//! [`PrimaryUrl::masked`] (used in status views and logs) all print
//! `********`, and no error message echoes a password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Port of a duet/KWDB node when the URL names none.
pub const DEFAULT_PORT: u16 = 26257;
/// Database when the URL has no path.
pub const DEFAULT_DATABASE: &str = "defaultdb";
/// User when the URL has no user info.
pub const DEFAULT_USER: &str = "root";
/// Limit on TCP connect plus startup when the URL sets no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What a password is rendered as.
pub const PASSWORD_MASK: &str = "********";

const PARAMETERS: &str =
    "sslmode, sslcert, sslkey, sslrootcert, application_name, password, connect_timeout";

/// Characters left readable when rendering user, host and database.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Query values also keep `/` so certificate paths render as written.
const QUERY_VALUE: &AsciiSet = &COMPONENT.remove(b'/');

/// A malformed primary URL. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("invalid primary URL: it must start with postgresql:// or postgres://")]
    Scheme,
    #[error("invalid primary URL: {0}")]
    Invalid(String),
    #[error("invalid primary URL: unknown parameter \"{0}\" (supported: {PARAMETERS})")]
    UnknownParameter(String),
    #[error("invalid primary URL: parameter \"{0}\" is given more than once")]
    DuplicateParameter(String),
    #[error("invalid primary URL: invalid value \"{value}\" for {param}, expected {expected}")]
    InvalidValue {
        param: String,
        value: String,
        expected: &'static str,
    },
}

/// libpq `sslmode`. `allow` and `prefer` both mean "try TLS without
/// verifying the certificate, fall back to plain if the primary refuses".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, UrlError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(invalid_value(
                    "sslmode",
                    value,
                    "disable, allow, prefer, require, verify-ca or verify-full",
                ))
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed primary URL. File paths are kept as written: the caller
/// resolves relative ones against the server's working directory.
#[derive(Clone, PartialEq, Eq)]
pub struct PrimaryUrl {
    /// `postgresql` or `postgres`, as written (kept for rendering).
    pub scheme: String,
    pub user: String,
    password: Option<String>,
    /// Host name or IP address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub database: String,
    pub sslmode: SslMode,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub sslrootcert: Option<PathBuf>,
    pub application_name: Option<String>,
    pub connect_timeout: Duration,
}

fn invalid_value(param: &str, value: &str, expected: &'static str) -> UrlError {
    UrlError::InvalidValue {
        param: param.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn decode(part: &str, what: &str) -> Result<String, UrlError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError::Invalid(format!("{what} is not valid UTF-8 after percent-decoding")))
}

impl PrimaryUrl {
    /// Parses a libpq URL (surrounding whitespace is ignored).
    pub fn parse(input: &str) -> Result<PrimaryUrl, UrlError> {
        let input = input.trim();
        let (scheme, rest) = input.split_once("://").ok_or(UrlError::Scheme)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "postgresql" && scheme != "postgres" {
            return Err(UrlError::Scheme);
        }
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };

        let mut url = PrimaryUrl {
            scheme,
            user: DEFAULT_USER.to_string(),
            password: None,
            host: String::new(),
            port: DEFAULT_PORT,
            database: DEFAULT_DATABASE.to_string(),
            sslmode: SslMode::default(),
            sslcert: None,
            sslkey: None,
            sslrootcert: None,
            application_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let user = decode(user, "the user name")?;
            if !user.is_empty() {
                url.user = user;
            }
            if let Some(password) = password {
                let password = decode(password, "the password")?;
                url.password = (!password.is_empty()).then_some(password);
            }
        }
        url.parse_host_port(hostport)?;
        let database = decode(path, "the database name")?;
        if !database.is_empty() {
            url.database = database;
        }
        url.parse_query(query)?;
        url.validate()?;
        Ok(url)
    }

    fn parse_host_port(&mut self, hostport: &str) -> Result<(), UrlError> {
        if hostport.contains(',') {
            return Err(UrlError::Invalid(
                "several hosts are not supported, name exactly one primary".into(),
            ));
        }
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| {
                UrlError::Invalid("IPv6 address is missing its closing ']'".into())
            })?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid_value("host", host, "an IPv6 address inside [ ]"));
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    UrlError::Invalid(format!("unexpected \"{after}\" after the IPv6 address"))
                })?),
            };
            (host.to_string(), port)
        } else {
            let (host, port) = match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            };
            if port.is_some_and(|p| p.contains(':')) {
                return Err(UrlError::Invalid(
                    "IPv6 addresses must be written in brackets, e.g. [::1]:26257".into(),
                ));
            }
            (decode(host, "the host name")?, port)
        };
        if host.starts_with('/') {
            return Err(UrlError::Invalid(
                "Unix-domain sockets are not supported, name a TCP host".into(),
            ));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
        {
            return Err(invalid_value("host", &host, "a host name or IP address"));
        }
        self.host = if host.is_empty() {
            "localhost".to_string()
        } else {
            host
        };
        if let Some(port) = port.filter(|p| !p.is_empty()) {
            self.port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid_value("port", port, "a number from 1 to 65535"))?;
        }
        Ok(())
    }

    fn parse_query(&mut self, query: &str) -> Result<(), UrlError> {
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key, "a parameter name")?;
            if seen.contains(&key) {
                return Err(UrlError::DuplicateParameter(key));
            }
            let value = decode(value, &format!("the value of {key}"))?;
            if value.is_empty() {
                return Err(UrlError::Invalid(format!(
                    "parameter \"{key}\" has no value"
                )));
            }
            match key.as_str() {
                "sslmode" => self.sslmode = SslMode::parse(&value)?,
                "sslcert" => self.sslcert = Some(PathBuf::from(value)),
                "sslkey" => self.sslkey = Some(PathBuf::from(value)),
                "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
                "application_name" => self.application_name = Some(value),
                "password" => {
                    if self.password.is_some() {
                        return Err(UrlError::DuplicateParameter(key));
                    }
                    self.password = Some(value);
                }
                "connect_timeout" => {
                    let secs = value.parse::<u64>().ok().filter(|s| *s > 0);
                    let secs = secs.ok_or_else(|| {
                        invalid_value("connect_timeout", &value, "a positive number of seconds")
                    })?;
                    self.connect_timeout = Duration::from_secs(secs);
                }
                _ => return Err(UrlError::UnknownParameter(key)),
            }
            seen.push(key);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), UrlError> {
        match (&self.sslcert, &self.sslkey) {
            (Some(_), None) => {
                return Err(UrlError::Invalid("sslcert is given without sslkey".into()))
            }
            (None, Some(_)) => {
                return Err(UrlError::Invalid("sslkey is given without sslcert".into()))
            }
            _ => {}
        }
        if matches!(self.sslmode, SslMode::VerifyCa | SslMode::VerifyFull)
            && self.sslrootcert.is_none()
        {
            return Err(UrlError::Invalid(format!(
                "sslmode={} needs sslrootcert=FILE (the CA certificate that signed the primary's certificate)",
                self.sslmode
            )));
        }
        Ok(())
    }

    /// The password written in the URL, if any (see [`Self::resolve_password`]).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Replaces the password, e.g. with one from the server's configuration.
    pub fn set_password(&mut self, password: Option<String>) {
        self.password = password.filter(|p| !p.is_empty());
    }

    /// The password to authenticate with: the URL's, else the matching
    /// `.pgpass` entry (file from `PGPASSFILE`, else `$HOME/.pgpass`).
    pub fn resolve_password(&self) -> Option<String> {
        if let Some(password) = &self.password {
            return Some(password.clone());
        }
        self.password_from_pgpass(&default_pgpass_path()?)
    }

    /// Looks the password up in a libpq password file. Like libpq, a file
    /// that is missing, not a plain file, or readable by group or others is
    /// ignored (the latter two with a warning).
    pub fn password_from_pgpass(&self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            tracing::warn!(path = %path.display(), "password file is not a plain file, ignored");
            return None;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "password file has group or world access, ignored; permissions should be u=rw (0600) or less"
                );
                return None;
            }
        }
        let content = std::fs::read_to_string(path).ok()?;
        let port = self.port.to_string();
        pgpass_lookup(&content, [&self.host, &port, &self.database, &self.user])
    }

    /// The URL with the password replaced by `********`, for status views
    /// and logs. Components are rendered canonically (defaults filled in).
    pub fn masked(&self) -> String {
        self.render(true)
    }

    /// The full URL including the password, for persisting the replication
    /// state only. Never log it.
    pub fn expose_url(&self) -> String {
        self.render(false)
    }

    fn render(&self, mask: bool) -> String {
        let user = utf8_percent_encode(&self.user, COMPONENT);
        let mut out = format!("{}://{user}", self.scheme);
        match &self.password {
            Some(_) if mask => out.push_str(&format!(":{PASSWORD_MASK}")),
            Some(password) => {
                out.push(':');
                out.extend(utf8_percent_encode(password, COMPONENT));
            }
            None => {}
        }
        out.push('@');
        if self.host.contains(':') {
            out.push_str(&format!("[{}]", self.host));
        } else {
            out.extend(utf8_percent_encode(&self.host, COMPONENT));
        }
        out.push_str(&format!(":{}/", self.port));
        out.extend(utf8_percent_encode(&self.database, COMPONENT));
        out.push_str(&format!("?sslmode={}", self.sslmode));
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        let params = [
            ("sslcert", path(&self.sslcert)),
            ("sslkey", path(&self.sslkey)),
            ("sslrootcert", path(&self.sslrootcert)),
            ("application_name", self.application_name.clone()),
            (
                "connect_timeout",
                (self.connect_timeout != DEFAULT_CONNECT_TIMEOUT)
                    .then(|| self.connect_timeout.as_secs().to_string()),
            ),
        ];
        for (key, value) in params {
            if let Some(value) = value {
                out.push_str(&format!("&{key}="));
                out.extend(utf8_percent_encode(&value, QUERY_VALUE));
            }
        }
        out
    }
}

impl std::str::FromStr for PrimaryUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PrimaryUrl::parse(s)
    }
}

impl fmt::Display for PrimaryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PrimaryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimaryUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| PASSWORD_MASK))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("sslrootcert", &self.sslrootcert)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// `PGPASSFILE` if set and non-empty, else `$HOME/.pgpass`.
pub fn default_pgpass_path() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("PGPASSFILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".pgpass"))
}

/// One `host:port:database:username` field of a `.pgpass` line.
#[derive(Debug, PartialEq)]
enum PgpassField {
    Any,
    Literal(String),
}

/// Splits a `.pgpass` line into four key fields and the password, honouring
/// `\:` and `\\` escapes; a field that is exactly an unescaped `*` matches
/// anything. `None` for lines with fewer than five fields.
fn split_pgpass_line(line: &str) -> Option<([PgpassField; 4], String)> {
    let mut fields: Vec<PgpassField> = Vec::with_capacity(4);
    let (mut current, mut escaped_any) = (String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push(chars.next().unwrap_or('\\'));
                escaped_any = true;
            }
            ':' if fields.len() < 4 => {
                fields.push(if current == "*" && !escaped_any {
                    PgpassField::Any
                } else {
                    PgpassField::Literal(std::mem::take(&mut current))
                });
                current.clear();
                escaped_any = false;
            }
            _ => current.push(c),
        }
    }
    let fields: [PgpassField; 4] = fields.try_into().ok()?;
    Some((fields, current))
}

/// The password of the first `.pgpass` line matching `wanted`
/// (host, port, database, user), as libpq does.
fn pgpass_lookup(content: &str, wanted: [&str; 4]) -> Option<String> {
    content
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(split_pgpass_line)
        .find(|(fields, _)| {
            fields.iter().zip(wanted).all(|(field, want)| match field {
                PgpassField::Any => true,
                PgpassField::Literal(value) => value == want,
            })
        })
        .map(|(_, password)| password)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KWDB: &str = "postgresql://root@localhost:26257/defaultdb?sslmode=verify-ca&sslcert=./certs/client.root.crt&sslkey=./certs/client.root.key&sslrootcert=./certs/ca.crt";

    #[test]
    fn parses_the_kwdb_example_exactly() {
        let url = PrimaryUrl::parse(KWDB).unwrap();
        assert_eq!(url.scheme, "postgresql");
        assert_eq!(url.user, "root");
        assert_eq!(url.password(), None);
        assert_eq!((url.host.as_str(), url.port), ("localhost", 26257));
        assert_eq!(url.database, "defaultdb");
        assert_eq!(url.sslmode, SslMode::VerifyCa);
        assert_eq!(
            url.sslcert.as_deref(),
            Some(Path::new("./certs/client.root.crt"))
        );
        assert_eq!(
            url.sslkey.as_deref(),
            Some(Path::new("./certs/client.root.key"))
        );
        assert_eq!(
            url.sslrootcert.as_deref(),
            Some(Path::new("./certs/ca.crt"))
        );
        assert_eq!(url.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(url.masked(), KWDB);
        // the trailing whitespace of a statement does not matter
        assert_eq!(PrimaryUrl::parse(&format!("  {KWDB}\n")).unwrap(), url);
    }

    #[test]
    fn defaults_and_postgres_scheme() {
        let url = PrimaryUrl::parse("postgres://db1").unwrap();
        assert_eq!(url.scheme, "postgres");
        assert_eq!((url.user.as_str(), url.host.as_str()), ("root", "db1"));
        assert_eq!((url.port, url.database.as_str()), (26257, "defaultdb"));
        assert_eq!(url.sslmode, SslMode::Prefer);
        assert_eq!(
            url.masked(),
            "postgres://root@db1:26257/defaultdb?sslmode=prefer"
        );
        let url = PrimaryUrl::parse("postgresql://?sslmode=disable").unwrap();
        assert_eq!(url.host, "localhost");
        let url = PrimaryUrl::parse("postgresql://h:/?sslmode=require").unwrap();
        assert_eq!((url.port, url.database.as_str()), (26257, "defaultdb"));
    }

    #[test]
    fn password_percent_decoding_and_masking() {
        let url = PrimaryUrl::parse(
            "postgresql://repl%40x:p%40ss%3Aw%2Fd@primary.example:5433/my%20db?application_name=sec%201&connect_timeout=3&sslmode=require",
        )
        .unwrap();
        assert_eq!(url.user, "repl@x");
        assert_eq!(url.password(), Some("p@ss:w/d"));
        assert_eq!(url.database, "my db");
        assert_eq!(url.application_name.as_deref(), Some("sec 1"));
        assert_eq!(url.connect_timeout, Duration::from_secs(3));
        let masked = url.masked();
        assert_eq!(
            masked,
            "postgresql://repl%40x:********@primary.example:5433/my%20db?sslmode=require&application_name=sec%201&connect_timeout=3"
        );
        for shown in [
            masked,
            url.to_string(),
            format!("{url:?}"),
            format!("{url:#?}"),
        ] {
            assert!(
                !shown.contains("p@ss") && !shown.contains("p%40ss"),
                "{shown}"
            );
            assert!(shown.contains(PASSWORD_MASK), "{shown}");
        }
        // the unmasked form round-trips
        assert_eq!(PrimaryUrl::parse(&url.expose_url()).unwrap(), url);
        // a password given as a parameter is masked as well
        let url = PrimaryUrl::parse("postgresql://u@h?password=s3cr%26t").unwrap();
        assert_eq!(url.password(), Some("s3cr&t"));
        assert_eq!(
            url.masked(),
            "postgresql://u:********@h:26257/defaultdb?sslmode=prefer"
        );
        assert!(!format!("{url:?}").contains("s3cr"));
    }

    #[test]
    fn ipv6_hosts() {
        let url = PrimaryUrl::parse("postgresql://root@[::1]:26258/db?sslmode=disable").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 26258));
        assert_eq!(
            url.masked(),
            "postgresql://root@[::1]:26258/db?sslmode=disable"
        );
        let url = PrimaryUrl::parse("postgresql://[fe80::1]").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("fe80::1", 26257));
        let err = PrimaryUrl::parse("postgresql://::1:26257/db").unwrap_err();
        assert!(err.to_string().contains("brackets"), "{err}");
        assert!(PrimaryUrl::parse("postgresql://[::1/db").is_err());
        assert!(PrimaryUrl::parse("postgresql://[nothex]:1/db").is_err());
    }

    #[test]
    fn errors_name_the_problem_and_never_the_password() {
        let cases = [
            ("mysql://root@h/db", "postgresql://"),
            ("localhost:26257", "postgresql://"),
            (
                "postgresql://u:hunter2@h/db?foo=1",
                "unknown parameter \"foo\"",
            ),
            (
                "postgresql://u:hunter2@h:99999/db",
                "invalid value \"99999\" for port",
            ),
            ("postgresql://u:hunter2@h:0/db", "for port"),
            ("postgresql://u:hunter2@h/db?sslmode=on", "for sslmode"),
            (
                "postgresql://u:hunter2@h/db?sslmode=verify-full",
                "needs sslrootcert",
            ),
            (
                "postgresql://u:hunter2@h/db?sslcert=a.crt",
                "sslcert is given without sslkey",
            ),
            (
                "postgresql://u:hunter2@h/db?sslkey=a.key",
                "sslkey is given without sslcert",
            ),
            (
                "postgresql://u:hunter2@h/db?connect_timeout=0",
                "connect_timeout",
            ),
            (
                "postgresql://u:hunter2@h/db?connect_timeout=x",
                "connect_timeout",
            ),
            ("postgresql://u:hunter2@h/db?sslmode", "has no value"),
            (
                "postgresql://u:hunter2@h/db?sslmode=disable&sslmode=require",
                "more than once",
            ),
            ("postgresql://u:hunter2@h/db?password=x", "more than once"),
            ("postgresql://u:hunter2@a,b/db", "several hosts"),
            ("postgresql://u:hunter2@%2Ftmp/db", "Unix-domain"),
            ("postgresql://u:hunter2@h/%FF", "UTF-8"),
        ];
        for (input, expected) in cases {
            let err = PrimaryUrl::parse(input).unwrap_err().to_string();
            assert!(err.starts_with("invalid primary URL: "), "{input}: {err}");
            assert!(err.contains(expected), "{input}: {err}");
            assert!(!err.contains("hunter2"), "{input}: {err}");
        }
    }

    #[test]
    fn every_sslmode_parses() {
        for mode in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            let url =
                PrimaryUrl::parse(&format!("postgresql://h?sslmode={mode}&sslrootcert=ca.crt"))
                    .unwrap();
            assert_eq!(url.sslmode.as_str(), mode);
        }
    }

    #[test]
    fn pgpass_lines_escapes_and_wildcards() {
        let file = "# comment\n\
                    other:26257:*:root:wrong\n\
                    localhost:26257:defaultdb:root:first\\:pa\\\\ss\n\
                    *:*:*:root:later\n\
                    \\:\\:1:26258:*:repl:v6\r\n\
                    *:*:*:\\*:star-user\n\
                    short:line\n";
        let look = |host, port, db, user| pgpass_lookup(file, [host, port, db, user]);
        assert_eq!(
            look("localhost", "26257", "defaultdb", "root").as_deref(),
            Some("first:pa\\ss")
        );
        assert_eq!(
            look("localhost", "26257", "other", "root").as_deref(),
            Some("later")
        );
        assert_eq!(look("::1", "26258", "db", "repl").as_deref(), Some("v6"));
        assert_eq!(look("::1", "26257", "db", "repl"), None);
        // an escaped star is a literal user named "*", not a wildcard
        assert_eq!(look("h", "1", "d", "*").as_deref(), Some("star-user"));
        assert_eq!(look("h", "1", "d", "nobody"), None);
    }

    #[cfg(unix)]
    #[test]
    fn pgpass_file_lookup_and_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "primary:26257:defaultdb:repl:from\\:file\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut url = PrimaryUrl::parse("postgresql://repl@primary/defaultdb").unwrap();
        assert_eq!(
            url.password_from_pgpass(&path).as_deref(),
            Some("from:file")
        );
        // group/world readable files are ignored, as libpq does
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(url.password_from_pgpass(&path), None);
        assert_eq!(url.password_from_pgpass(&dir.path().join("missing")), None);
        assert_eq!(url.password_from_pgpass(dir.path()), None);
        // the URL's password wins over any file
        url.set_password(Some("in-url".into()));
        assert_eq!(url.resolve_password().as_deref(), Some("in-url"));
    }
}
