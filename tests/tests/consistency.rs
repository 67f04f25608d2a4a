//! The consistency harness (tests/faults/) in its short form: a writer and
//! reader workload on a primary-secondary pair while the nemesis kills,
//! pauses, cuts, slows and corrupts, fails over and switches over. The
//! long form is the same test run longer:
//! `DUET_FAULTS_SECONDS=600 cargo test -p duet-tests --test consistency -- --nocapture --test-threads 1`
//! (`DUET_FAULTS_SEED` replays a run).

use duet_tests::faults::{run, RunConfig};

#[test]
fn synchronous_commits_lose_nothing_under_faults() {
    let result = run(&RunConfig::from_env(2, "on", 20));
    eprintln!("{result}");
    assert!(
        result.report.acknowledged >= 50,
        "too little work got through: {result}"
    );
    let anomalies = result.report.anomalies();
    assert!(anomalies.is_empty(), "{result}");
}

#[test]
fn asynchronous_commits_stay_consistent_under_faults() {
    let result = run(&RunConfig::from_env(2, "off", 20));
    eprintln!("{result}");
    assert!(
        result.report.acknowledged >= 50,
        "too little work got through: {result}"
    );
    // Asynchronous replication may lose the acknowledged tail of a
    // primary that dies; everything else must hold.
    let anomalies = result.report.anomalies_besides_loss();
    assert!(anomalies.is_empty(), "{result}");
}
