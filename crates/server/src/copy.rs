//! The COPY sub-protocol: CopyInResponse then the client's CopyData until
//! CopyDone or CopyFail; CopyOutResponse, CopyData per row, CopyDone.

use pgwire::messages::copy::{CopyData, CopyDone, CopyInResponse, CopyOutResponse};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use duet_sql::{CopyResponse, QueryResult, SqlError, SqlState};

use crate::connection::{fatal, Backend, ConnError};

impl Backend {
    /// Runs the copy exchange a COPY statement's result asks for. Returns
    /// the statement's final result (its tag) or its error; data the client
    /// sends after an error is dropped by the main loop, as in PostgreSQL.
    pub(crate) async fn run_copy(
        &mut self,
        mut result: QueryResult,
    ) -> Result<Result<QueryResult, SqlError>, ConnError> {
        match result.copy.take() {
            None => Ok(Ok(result)),
            Some(CopyResponse::Out {
                columns,
                csv: _,
                data,
            }) => {
                self.conn
                    .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                        0,
                        columns as i16,
                        vec![0; columns],
                    )))
                    .await?;
                for chunk in data {
                    self.conn
                        .send(PgWireBackendMessage::CopyData(CopyData::new(chunk.into())))
                        .await?;
                }
                self.conn
                    .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
                    .await?;
                Ok(Ok(result))
            }
            Some(CopyResponse::In { columns, csv: _ }) => {
                self.conn
                    .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
                        0,
                        columns as i16,
                        vec![0; columns],
                    )))
                    .await?;
                self.conn.flush().await?;
                self.copy_in().await
            }
        }
    }

    async fn copy_in(&mut self) -> Result<Result<QueryResult, SqlError>, ConnError> {
        loop {
            let msg = match self.conn.recv().await {
                Ok(Some(msg)) => msg,
                Ok(None) | Err(_) => {
                    let _ = self.session.copy_fail("connection closed").await;
                    return Err(ConnError::Closed);
                }
            };
            match msg {
                PgWireFrontendMessage::CopyData(d) => {
                    if let Err(e) = self.session.copy_data(&d.data).await {
                        return Ok(Err(e));
                    }
                }
                PgWireFrontendMessage::CopyDone(_) => return Ok(self.session.copy_done().await),
                PgWireFrontendMessage::CopyFail(f) => {
                    return Ok(Err(self.session.copy_fail(&f.message).await))
                }
                // Ignored during copy-in, as the protocol says.
                PgWireFrontendMessage::Flush(_) | PgWireFrontendMessage::Sync(_) => {}
                _ => {
                    let _ = self.session.copy_fail("protocol violation").await;
                    return Err(fatal(
                        SqlState::PROTOCOL_VIOLATION,
                        "unexpected message type during COPY from stdin",
                    ));
                }
            }
        }
    }
}
