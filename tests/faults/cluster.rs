//! A replicated cluster for fault tests: real `duet` nodes on loopback
//! (insecure mode, so the workload's tokio-postgres clients need no TLS),
//! each behind a [`FaultProxy`] that its secondaries' replication streams
//! go through, and the operator's statements for failover, switchover and
//! re-attaching a node.

use std::time::Duration;

use crate::faults::FaultProxy;
use crate::pair::{scalar, CATCH_UP};
use crate::{wait_for, TestNode};

/// How long a re-attached or restarted node may take to stream again
/// (a re-copy included).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(90);

/// One node and the link its secondaries reach it through.
pub struct Member {
    pub node: TestNode,
    /// In front of this node's SQL port: what secondaries stream from.
    pub link: FaultProxy,
    /// False between a SIGKILL and the restart.
    pub up: bool,
    /// True between SIGSTOP and SIGCONT.
    pub paused: bool,
}

pub struct Cluster {
    pub members: Vec<Member>,
    primary: usize,
}

impl Cluster {
    /// `size` insecure nodes with `env`: node 0 PRIMARY, the others
    /// SECONDARY streaming from it through its link. `schema` runs on the
    /// primary before the secondaries copy.
    pub fn start(size: usize, env: &[(&str, &str)], schema: &[&str]) -> Cluster {
        assert!(size >= 2, "a cluster has a primary and a secondary");
        let members: Vec<Member> = (0..size)
            .map(|_| {
                let node = TestNode::insecure_with_env(env);
                let link = FaultProxy::start(node.addr());
                Member {
                    node,
                    link,
                    up: true,
                    paused: false,
                }
            })
            .collect();
        let mut cluster = Cluster {
            members,
            primary: 0,
        };
        let mut setup: Vec<&str> = schema.to_vec();
        setup.push("REPLICATE SET ROLE PRIMARY;");
        cluster.node(0).psql(&setup).assert_ok();
        for i in 1..size {
            cluster.attach(i);
        }
        cluster
    }

    pub fn node(&self, i: usize) -> &TestNode {
        &self.members[i].node
    }

    pub fn primary(&self) -> usize {
        self.primary
    }

    pub fn secondaries(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| i != self.primary)
            .collect()
    }

    /// Every node's SQL port (clients connect directly).
    pub fn ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.node.port()).collect()
    }

    /// The primary URL a secondary uses: node `i` through its link.
    fn url_of(&self, i: usize) -> String {
        format!(
            "postgresql://root@127.0.0.1:{}/defaultdb?sslmode=disable&connect_timeout=5",
            self.members[i].link.port()
        )
    }

    /// Makes node `i` a secondary of the current primary and waits until it
    /// streams (it re-copies by itself if its history diverged).
    pub fn attach(&mut self, i: usize) {
        let url = self.url_of(self.primary);
        let node = self.node(i);
        let role = scalar(node, "SELECT pg_is_in_recovery()");
        let mut statements = Vec::new();
        if role != "t" {
            statements.push("REPLICATE SET ROLE SECONDARY;".to_string());
        }
        statements.push(format!("REPLICATE SET PRIMARY {url};"));
        statements.push("REPLICATE SET SERVICE CREATE;".into());
        statements.push("REPLICATE SET SERVICE START;".into());
        let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
        node.psql(&refs).assert_ok();
        self.wait_streaming(i);
    }

    /// Waits until secondary `i` reports a live stream.
    pub fn wait_streaming(&self, i: usize) {
        let node = self.node(i);
        wait_for(
            &format!("node {i} to stream from node {}", self.primary),
            ATTACH_TIMEOUT,
            || {
                (scalar(node, "SELECT status FROM pg_stat_wal_receiver") == "streaming")
                    .then_some(())
            },
        );
    }

    /// Unplanned failover: SIGKILL the primary, promote the secondary that
    /// received the most (as docs/replication.md tells operators), point
    /// the other secondaries at it, then restart the old primary and
    /// re-attach it. Returns the new primary.
    pub fn failover(&mut self) -> usize {
        let old = self.primary;
        self.resume_all();
        self.members[old].node.kill9();
        self.members[old].up = false;
        let new = self.most_advanced_secondary();
        self.promote(new, old);
        self.restart(old);
        self.attach(old);
        new
    }

    /// Promotes `new` and points the secondaries other than `old` at it.
    fn promote(&mut self, new: usize, old: usize) {
        self.node(new)
            .psql(&["REPLICATE SET ROLE PRIMARY;"])
            .assert_ok();
        self.primary = new;
        let url = self.url_of(new);
        for i in self.secondaries() {
            if i != old {
                self.node(i)
                    .psql(&[&format!("REPLICATE SET PRIMARY {url};")])
                    .assert_ok();
            }
        }
    }

    /// The secondary with the highest received LSN.
    fn most_advanced_secondary(&self) -> usize {
        self.secondaries()
            .into_iter()
            .max_by_key(|&i| {
                let lsn = scalar(self.node(i), "SELECT pg_last_wal_receive_lsn()");
                parse_lsn(&lsn)
            })
            .expect("a secondary")
    }

    /// Planned switchover (SPEC 5): STOP on the secondary, demote the
    /// primary, promote the secondary, re-attach the old primary. Nothing
    /// committed is lost. Returns the new primary.
    pub fn switchover(&mut self) -> usize {
        self.resume_all();
        let old = self.primary;
        let new = self.secondaries()[0];
        // A consistent STOP needs a live stream; one that an earlier fault
        // broke reconnects by itself, so the operator retries.
        for attempt in 1.. {
            self.wait_streaming(new);
            let out = self.node(new).psql(&["REPLICATE SET SERVICE STOP;"]);
            if out.success() {
                break;
            }
            assert!(attempt < 10, "SERVICE STOP keeps failing: {}", out.stderr);
            eprintln!("SERVICE STOP failed, retrying: {}", out.stderr.trim());
            std::thread::sleep(Duration::from_millis(500));
        }
        self.node(old)
            .psql(&["REPLICATE SET ROLE SECONDARY;"])
            .assert_ok();
        self.promote(new, old);
        self.attach(old);
        new
    }

    /// SIGKILL node `i` (not the primary's role: it keeps it on restart).
    pub fn kill(&mut self, i: usize) {
        self.members[i].node.kill9();
        self.members[i].up = false;
        self.members[i].paused = false;
    }

    /// Starts node `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.members[i].node.restart();
        self.members[i].up = true;
        self.members[i].paused = false;
    }

    pub fn pause(&mut self, i: usize) {
        self.members[i].node.pause();
        self.members[i].paused = true;
    }

    pub fn resume(&mut self, i: usize) {
        if self.members[i].paused {
            self.members[i].node.resume();
            self.members[i].paused = false;
        }
    }

    pub fn resume_all(&mut self) {
        for i in 0..self.members.len() {
            self.resume(i);
        }
    }

    /// Ends every fault: links healed, nodes resumed, dead nodes restarted
    /// and streaming again.
    pub fn heal(&mut self) {
        for m in &self.members {
            m.link.heal();
        }
        self.resume_all();
        for i in 0..self.members.len() {
            if !self.members[i].up {
                self.restart(i);
            }
        }
        for i in self.secondaries() {
            self.wait_streaming(i);
        }
    }

    /// Waits until every secondary has replayed everything the primary
    /// has (call once writes have stopped).
    pub fn wait_converged(&self) {
        let primary = self.node(self.primary);
        let target = scalar(primary, "SELECT pg_current_wal_lsn()");
        for i in self.secondaries() {
            let node = self.node(i);
            wait_for(
                &format!("node {i} to replay up to {target}"),
                CATCH_UP,
                || {
                    let replayed = scalar(node, "SELECT pg_last_wal_replay_lsn()");
                    (replayed == target).then_some(())
                },
            );
        }
    }
}

/// An LSN as PostgreSQL prints it (`0/1A2B`) as a number.
fn parse_lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap_or(("0", "0"));
    let hi = u64::from_str_radix(hi, 16).unwrap_or(0);
    let lo = u64::from_str_radix(lo, 16).unwrap_or(0);
    hi << 32 | lo
}
