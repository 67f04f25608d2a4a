//! Replays every committed input of every fuzz target: the seed corpora
//! (`corpus/TARGET/`) and the inputs that once failed (`regressions/TARGET/`,
//! each fixed). Runs in CI with the ordinary test profile.

use std::fs;
use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let input = fs::read(&path).expect("read corpus file");
            eprintln!("{target}: {}", path.display());
            body(&input);
            count += 1;
        }
    }
    assert!(count > 0, "no committed inputs for {target}");
}

#[test]
fn frontend_message() {
    replay("frontend_message", duet_fuzz::frontend_message);
}

#[test]
fn sql_statement() {
    replay("sql_statement", duet_fuzz::sql_statement);
}

#[test]
fn replication_frame() {
    replay("replication_frame", duet_fuzz::replication_frame);
}

#[test]
fn writebatch_apply() {
    replay("writebatch_apply", duet_fuzz::writebatch_apply);
}
