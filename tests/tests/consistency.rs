//! The consistency harness (tests/faults/) in its short form: writers and
//! readers on a primary-secondary pair while the nemesis kills, pauses,
//! cuts, slows and corrupts, fails over and switches over. The long form
//! is the same tests run longer:
//! `DUET_FAULTS_SECONDS=600 cargo test -p duet-tests --test consistency -- --nocapture --test-threads 1`
//! (`DUET_FAULTS_SEED` replays a run; its seed is printed first).

use duet_tests::faults::{run, Nemesis, RunConfig, RunResult};

/// Enough work got through for the checks to mean something.
fn assert_worked(result: &RunResult) {
    assert!(
        result.report.acknowledged >= 50,
        "too little work got through: {result}"
    );
}

#[test]
fn synchronous_commits_lose_nothing_under_faults() {
    let result = run(&RunConfig::from_env(2, "on", 15));
    eprintln!("{result}");
    assert_worked(&result);
    let anomalies = result.report.anomalies();
    assert!(anomalies.is_empty(), "{result}");
}

#[test]
fn without_a_failover_asynchronous_commits_lose_nothing_either() {
    // Kills, pauses, link faults and planned switchovers (which take over
    // the old primary's last commits): nothing acknowledged may go.
    let result = run(&RunConfig::from_env(2, "off", 15).without(Nemesis::Failover));
    eprintln!("{result}");
    assert_worked(&result);
    let anomalies = result.report.anomalies();
    assert!(anomalies.is_empty(), "{result}");
}

#[test]
fn asynchronous_failovers_lose_only_the_unreplicated_tail() {
    let result = run(&RunConfig::from_env(2, "off", 15));
    eprintln!("{result}");
    assert_worked(&result);
    // A primary that dies takes the commits its secondary had not yet
    // received with it; everything else must hold.
    let anomalies = result.report.anomalies_besides_loss();
    assert!(anomalies.is_empty(), "{result}");
    // And the loss is reported: the old primaries said what their
    // re-copies discarded (each lost write is at least one LSN of it).
    assert!(
        result.report.lost_acknowledged.len() as u64 <= result.discarded_lsns,
        "{result}"
    );
}

#[test]
fn three_nodes_with_synchronous_commits_lose_nothing_under_faults() {
    // Failovers promote the secondary that received the most; the other
    // follows the new primary.
    let result = run(&RunConfig::from_env(3, "on", 15));
    eprintln!("{result}");
    assert_worked(&result);
    let anomalies = result.report.anomalies();
    assert!(anomalies.is_empty(), "{result}");
}
