//! What the SQL crate's integration tests share.

use std::sync::Arc;

use duet_sql::{Database, Session, SessionContext};

/// A session of `root` in `defaultdb`, as a client's would be.
pub fn root_session(db: &Arc<Database>) -> Session {
    db.session(SessionContext {
        user: "root".into(),
        database: "defaultdb".into(),
        backend_pid: 1,
        client_addr: None,
        server_port: None,
        startup_params: vec![],
    })
    .expect("session")
}
