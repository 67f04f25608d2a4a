//! Host-based authentication: picks the rule (like a pg_hba.conf line) that
//! governs a connection. Matching follows PostgreSQL: the first rule whose
//! connection type, database, user and address all match wins; no match
//! means the connection is rejected (28000).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{AuthMethod, ConnType, HbaRule};

/// The rules used when the configuration has none.
///
/// Insecure mode trusts everyone (local development only); secure mode
/// accepts TLS connections only, authenticated by client certificate or
/// SCRAM-SHA-256, so plaintext TCP matches no rule and is rejected.
pub fn default_rules(insecure: bool) -> Vec<HbaRule> {
    let (conn_type, method) = if insecure {
        (ConnType::Host, AuthMethod::Trust)
    } else {
        (ConnType::Hostssl, AuthMethod::CertOrScramSha256)
    };
    vec![HbaRule {
        conn_type,
        database: "all".into(),
        user: "all".into(),
        address: "all".into(),
        method,
    }]
}

/// A rule whose fields cannot match what they were meant to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HbaError {
    #[error(
        "hba rule {index}: invalid address \"{address}\": expected \"all\", an IP address or a CIDR such as \"10.0.0.0/8\""
    )]
    BadAddress { index: usize, address: String },
    #[error("hba rule {index}: empty {field} list")]
    EmptyList { index: usize, field: &'static str },
}

/// Checks every rule once at startup (and on reload), so a typo is an error
/// instead of a rule that silently never matches. `index` is 1-based.
pub fn validate_rules(rules: &[HbaRule]) -> Result<(), HbaError> {
    for (i, rule) in rules.iter().enumerate() {
        let index = i + 1;
        if list(&rule.database).next().is_none() {
            return Err(HbaError::EmptyList {
                index,
                field: "database",
            });
        }
        if list(&rule.user).next().is_none() {
            return Err(HbaError::EmptyList {
                index,
                field: "user",
            });
        }
        if parse_address(&rule.address).is_none() {
            return Err(HbaError::BadAddress {
                index,
                address: rule.address.clone(),
            });
        }
    }
    Ok(())
}

/// The first rule matching a TCP connection, or `None` (reject).
pub fn find_rule<'a>(
    rules: &'a [HbaRule],
    ssl: bool,
    addr: IpAddr,
    database: &str,
    user: &str,
    replication: bool,
) -> Option<&'a HbaRule> {
    rules.iter().find(|rule| {
        conn_type_matches(rule.conn_type, ssl)
            && database_matches(&rule.database, database, user, replication)
            && user_matches(&rule.user, user)
            && address_matches(&rule.address, addr)
    })
}

/// PostgreSQL's exact message (SQLSTATE 28000) when no rule matched.
pub fn no_entry_message(addr: IpAddr, user: &str, database: &str, ssl: bool) -> String {
    format!(
        "no pg_hba.conf entry for host \"{}\", user \"{user}\", database \"{database}\", {}",
        addr.to_canonical(),
        encryption(ssl)
    )
}

/// PostgreSQL's message when no rule matched a replication connection.
pub fn no_replication_entry_message(addr: IpAddr, user: &str, ssl: bool) -> String {
    format!(
        "no pg_hba.conf entry for replication connection from host \"{}\", user \"{user}\", {}",
        addr.to_canonical(),
        encryption(ssl)
    )
}

fn encryption(ssl: bool) -> &'static str {
    if ssl {
        "SSL encryption"
    } else {
        "no encryption"
    }
}

fn conn_type_matches(conn_type: ConnType, ssl: bool) -> bool {
    match conn_type {
        // Only TCP connections reach this function.
        ConnType::Local => false,
        ConnType::Host => true,
        ConnType::Hostssl => ssl,
        ConnType::Hostnossl => !ssl,
    }
}

/// Comma-separated list entries, trimmed, empty entries skipped.
fn list(field: &str) -> impl Iterator<Item = &str> {
    field.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn database_matches(field: &str, database: &str, user: &str, replication: bool) -> bool {
    list(field).any(|entry| match entry {
        // As in PostgreSQL, physical replication connections match only the
        // `replication` keyword, and `all` does not cover them.
        "replication" => replication,
        _ if replication => false,
        "all" => true,
        "sameuser" => database == user,
        name => name == database,
    })
}

fn user_matches(field: &str, user: &str) -> bool {
    list(field).any(|entry| entry == "all" || entry == user)
}

fn address_matches(field: &str, addr: IpAddr) -> bool {
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; compare
    // them as the IPv4 addresses they are.
    let addr = addr.to_canonical();
    match parse_address(field) {
        Some(Address::All) => true,
        Some(Address::Net(net)) => net.contains(&addr),
        None => false,
    }
}

enum Address {
    All,
    Net(IpNet),
}

fn parse_address(field: &str) -> Option<Address> {
    let field = field.trim();
    if field == "all" {
        return Some(Address::All);
    }
    if let Ok(net) = field.parse::<IpNet>() {
        return Some(Address::Net(canonical_net(net)));
    }
    // A bare address means that single host.
    field
        .parse::<IpAddr>()
        .ok()
        .map(|ip| Address::Net(IpNet::from(ip.to_canonical())))
}

/// An IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) as the IPv4 network it
/// covers, so it matches canonicalized client addresses.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(v4net) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(v4net);
                }
            }
        }
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        conn_type: ConnType,
        database: &str,
        user: &str,
        address: &str,
        method: AuthMethod,
    ) -> HbaRule {
        HbaRule {
            conn_type,
            database: database.into(),
            user: user.into(),
            address: address.into(),
            method,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn method(
        rules: &[HbaRule],
        ssl: bool,
        addr: &str,
        db: &str,
        user: &str,
        repl: bool,
    ) -> Option<AuthMethod> {
        find_rule(rules, ssl, ip(addr), db, user, repl).map(|r| r.method)
    }

    #[test]
    fn insecure_default_trusts_everything() {
        let rules = default_rules(true);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].conn_type, ConnType::Host);
        for ssl in [false, true] {
            assert_eq!(
                method(&rules, ssl, "127.0.0.1", "defaultdb", "root", false),
                Some(AuthMethod::Trust)
            );
            assert_eq!(
                method(&rules, ssl, "::1", "x", "bob", false),
                Some(AuthMethod::Trust)
            );
        }
        // `all` does not cover replication connections, as in PostgreSQL.
        assert_eq!(
            method(&rules, false, "127.0.0.1", "defaultdb", "root", true),
            None
        );
    }

    #[test]
    fn secure_default_requires_tls() {
        let rules = default_rules(false);
        assert_eq!(
            rules,
            vec![rule(
                ConnType::Hostssl,
                "all",
                "all",
                "all",
                AuthMethod::CertOrScramSha256
            )]
        );
        assert_eq!(
            method(&rules, true, "10.1.2.3", "defaultdb", "root", false),
            Some(AuthMethod::CertOrScramSha256)
        );
        assert_eq!(
            method(&rules, false, "10.1.2.3", "defaultdb", "root", false),
            None
        );
        assert_eq!(
            method(&rules, false, "127.0.0.1", "defaultdb", "root", false),
            None
        );
        validate_rules(&rules).expect("valid");
        validate_rules(&default_rules(true)).expect("valid");
    }

    #[test]
    fn connection_types() {
        let rules = vec![
            rule(ConnType::Local, "all", "all", "all", AuthMethod::Trust),
            rule(ConnType::Hostnossl, "all", "all", "all", AuthMethod::Reject),
            rule(ConnType::Hostssl, "all", "all", "all", AuthMethod::Cert),
        ];
        assert_eq!(
            method(&rules, false, "127.0.0.1", "d", "u", false),
            Some(AuthMethod::Reject)
        );
        assert_eq!(
            method(&rules, true, "127.0.0.1", "d", "u", false),
            Some(AuthMethod::Cert)
        );

        let only_local = vec![rule(
            ConnType::Local,
            "all",
            "all",
            "all",
            AuthMethod::Trust,
        )];
        assert_eq!(
            method(&only_local, false, "127.0.0.1", "d", "u", false),
            None
        );
        assert_eq!(
            method(&only_local, true, "127.0.0.1", "d", "u", false),
            None
        );
    }

    #[test]
    fn first_match_wins() {
        let rules = vec![
            rule(ConnType::Hostssl, "all", "root", "all", AuthMethod::Cert),
            rule(
                ConnType::Host,
                "all",
                "bob",
                "127.0.0.1/32",
                AuthMethod::Reject,
            ),
            rule(
                ConnType::Hostssl,
                "all",
                "all",
                "all",
                AuthMethod::ScramSha256,
            ),
            rule(ConnType::Host, "all", "all", "all", AuthMethod::Trust),
        ];
        assert_eq!(
            method(&rules, true, "1.2.3.4", "d", "root", false),
            Some(AuthMethod::Cert)
        );
        assert_eq!(
            method(&rules, true, "127.0.0.1", "d", "bob", false),
            Some(AuthMethod::Reject)
        );
        assert_eq!(
            method(&rules, true, "127.0.0.2", "d", "bob", false),
            Some(AuthMethod::ScramSha256)
        );
        assert_eq!(
            method(&rules, false, "127.0.0.2", "d", "bob", false),
            Some(AuthMethod::Trust)
        );
        // The returned reference is the rule itself.
        let found = find_rule(&rules, true, ip("1.2.3.4"), "d", "root", false).expect("rule");
        assert!(std::ptr::eq(found, &rules[0]));
    }

    #[test]
    fn database_keywords_and_lists() {
        let rules = vec![
            rule(
                ConnType::Host,
                "replication",
                "all",
                "all",
                AuthMethod::Cert,
            ),
            rule(
                ConnType::Host,
                "sales, hr",
                "all",
                "all",
                AuthMethod::ScramSha256,
            ),
            rule(
                ConnType::Host,
                "sameuser",
                "all",
                "all",
                AuthMethod::Password,
            ),
        ];
        assert_eq!(
            method(&rules, true, "::1", "defaultdb", "u", true),
            Some(AuthMethod::Cert)
        );
        // The database named "replication" is not a replication connection.
        assert_eq!(method(&rules, true, "::1", "replication", "u", false), None);
        assert_eq!(
            method(&rules, true, "::1", "sales", "u", false),
            Some(AuthMethod::ScramSha256)
        );
        assert_eq!(
            method(&rules, true, "::1", "hr", "u", false),
            Some(AuthMethod::ScramSha256)
        );
        assert_eq!(
            method(&rules, true, "::1", "alice", "alice", false),
            Some(AuthMethod::Password)
        );
        assert_eq!(
            method(&rules, true, "::1", "defaultdb", "alice", false),
            None
        );
        // Names are case-sensitive and not prefixes.
        assert_eq!(method(&rules, true, "::1", "Sales", "u", false), None);
        assert_eq!(method(&rules, true, "::1", "sale", "u", false), None);

        // Replication connections match only the keyword, never names or all.
        let names = vec![
            rule(
                ConnType::Host,
                "defaultdb,all",
                "all",
                "all",
                AuthMethod::Trust,
            ),
            rule(
                ConnType::Host,
                "sales,replication",
                "all",
                "all",
                AuthMethod::Cert,
            ),
        ];
        assert_eq!(
            method(&names, true, "::1", "defaultdb", "u", true),
            Some(AuthMethod::Cert)
        );
        assert_eq!(
            method(&names, true, "::1", "defaultdb", "u", false),
            Some(AuthMethod::Trust)
        );
    }

    #[test]
    fn user_lists() {
        let rules = vec![
            rule(
                ConnType::Host,
                "all",
                "alice,bob",
                "all",
                AuthMethod::ScramSha256,
            ),
            rule(ConnType::Host, "all", " carol ", "all", AuthMethod::Cert),
        ];
        assert_eq!(
            method(&rules, true, "::1", "d", "alice", false),
            Some(AuthMethod::ScramSha256)
        );
        assert_eq!(
            method(&rules, true, "::1", "d", "bob", false),
            Some(AuthMethod::ScramSha256)
        );
        assert_eq!(
            method(&rules, true, "::1", "d", "carol", false),
            Some(AuthMethod::Cert)
        );
        assert_eq!(method(&rules, true, "::1", "d", "dave", false), None);
        assert_eq!(method(&rules, true, "::1", "d", "Alice", false), None);
        assert_eq!(method(&rules, true, "::1", "d", "all", false), None);
    }

    #[test]
    fn addresses() {
        let rules = vec![
            rule(
                ConnType::Host,
                "all",
                "all",
                "10.0.0.0/8",
                AuthMethod::Trust,
            ),
            rule(
                ConnType::Host,
                "all",
                "all",
                "192.168.1.7",
                AuthMethod::Password,
            ),
            rule(ConnType::Host, "all", "all", "fd00::/8", AuthMethod::Cert),
            rule(
                ConnType::Host,
                "all",
                "all",
                "::1/128",
                AuthMethod::ScramSha256,
            ),
            rule(
                ConnType::Host,
                "all",
                "all",
                "::ffff:172.16.0.0/108",
                AuthMethod::Reject,
            ),
        ];
        assert_eq!(
            method(&rules, false, "10.255.0.1", "d", "u", false),
            Some(AuthMethod::Trust)
        );
        assert_eq!(method(&rules, false, "11.0.0.1", "d", "u", false), None);
        assert_eq!(
            method(&rules, false, "192.168.1.7", "d", "u", false),
            Some(AuthMethod::Password)
        );
        assert_eq!(method(&rules, false, "192.168.1.8", "d", "u", false), None);
        assert_eq!(
            method(&rules, false, "fd12::5", "d", "u", false),
            Some(AuthMethod::Cert)
        );
        assert_eq!(
            method(&rules, false, "::1", "d", "u", false),
            Some(AuthMethod::ScramSha256)
        );
        assert_eq!(method(&rules, false, "::2", "d", "u", false), None);
        // IPv4 clients seen through a dual-stack socket.
        assert_eq!(
            method(&rules, false, "::ffff:10.1.1.1", "d", "u", false),
            Some(AuthMethod::Trust)
        );
        // IPv4-mapped networks in a rule match plain IPv4 clients.
        assert_eq!(
            method(&rules, false, "172.16.3.4", "d", "u", false),
            Some(AuthMethod::Reject)
        );
        assert_eq!(method(&rules, false, "172.32.3.4", "d", "u", false), None);
        // IPv4 rules never match unrelated IPv6 clients.
        assert_eq!(method(&rules, false, "fe80::1", "d", "u", false), None);
    }

    #[test]
    fn invalid_rules_never_match_and_fail_validation() {
        let rules = vec![rule(
            ConnType::Host,
            "all",
            "all",
            "localhost",
            AuthMethod::Trust,
        )];
        assert_eq!(method(&rules, false, "127.0.0.1", "d", "u", false), None);
        assert_eq!(
            validate_rules(&rules),
            Err(HbaError::BadAddress {
                index: 1,
                address: "localhost".into()
            })
        );
        let msg = validate_rules(&rules).expect_err("bad").to_string();
        assert!(msg.contains("\"localhost\""), "{msg}");

        let rules = vec![
            rule(ConnType::Host, "all", "all", "all", AuthMethod::Trust),
            rule(ConnType::Host, "all", " , ", "all", AuthMethod::Trust),
        ];
        assert_eq!(
            validate_rules(&rules),
            Err(HbaError::EmptyList {
                index: 2,
                field: "user"
            })
        );
        let rules = vec![rule(ConnType::Host, "", "all", "all", AuthMethod::Trust)];
        assert_eq!(
            validate_rules(&rules),
            Err(HbaError::EmptyList {
                index: 1,
                field: "database"
            })
        );
        let rules = vec![rule(
            ConnType::Host,
            "all",
            "all",
            "10.0.0.0/33",
            AuthMethod::Trust,
        )];
        assert!(validate_rules(&rules).is_err());
    }

    #[test]
    fn empty_rules_reject() {
        assert_eq!(method(&[], true, "127.0.0.1", "d", "u", false), None);
    }

    #[test]
    fn messages_match_postgresql() {
        assert_eq!(
            no_entry_message(ip("127.0.0.1"), "bob", "defaultdb", false),
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"bob\", database \"defaultdb\", no encryption"
        );
        assert_eq!(
            no_entry_message(ip("::1"), "bob", "defaultdb", true),
            "no pg_hba.conf entry for host \"::1\", user \"bob\", database \"defaultdb\", SSL encryption"
        );
        assert_eq!(
            no_entry_message(ip("::ffff:10.0.0.1"), "u", "d", true),
            "no pg_hba.conf entry for host \"10.0.0.1\", user \"u\", database \"d\", SSL encryption"
        );
        assert_eq!(
            no_replication_entry_message(ip("10.0.0.2"), "repl", false),
            "no pg_hba.conf entry for replication connection from host \"10.0.0.2\", user \"repl\", no encryption"
        );
    }
}
