//! The replication node: the REPLICATE statements (SPEC 4.2), their role
//! and state checks, and the tasks they start. One per server.

use std::sync::{Arc, Mutex};

use duet_storage::Store;
use tracing::{info, warn};

use crate::error::{ReplError, ReplResult};
use crate::receiver::{self, ReceiverHandle};
use crate::state::{NodeState, Role, Service, StateFile};
use crate::status::StatusBoard;
use crate::system;
use crate::url::PrimaryUrl;
use duet_storage::format_lsn;

/// A REPLICATE statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    SetPrimary(String),
    SetRole(Role),
    Service(ServiceAction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    Create,
    Start,
    Stop,
    Drop,
}

impl std::fmt::Display for ServiceAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceAction::Create => "CREATE",
            ServiceAction::Start => "START",
            ServiceAction::Stop => "STOP",
            ServiceAction::Drop => "DROP",
        })
    }
}

/// Called after the node's data or role changed under the SQL layer (so
/// it drops caches: sequences handed out elsewhere, a new copy).
pub type ChangeHook = Box<dyn Fn() + Send + Sync>;

/// Node settings for replication.
#[derive(Debug, Clone, Default)]
pub struct ReplicationOptions {
    /// Where WAL files are copied before the primary deletes them.
    pub archive_dir: Option<std::path::PathBuf>,
}

/// How a synchronous commit's wait for its secondary ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWait {
    Confirmed,
    TimedOut,
    /// The node was demoted (or its role otherwise changed) first.
    RoleChanged,
}

pub struct Replication {
    pub(crate) store: Arc<Store>,
    pub(crate) archive: Option<crate::archive::WalArchive>,
    file: StateFile,
    state: Mutex<NodeState>,
    /// One REPLICATE statement at a time.
    statements: tokio::sync::Mutex<()>,
    pub(crate) on_change: ChangeHook,
    receiver: Mutex<Option<ReceiverHandle>>,
    pub status: Arc<StatusBoard>,
    /// The in-memory state has changes (slot positions) not yet saved.
    dirty: std::sync::atomic::AtomicBool,
    /// Bumped whenever the node's role or data changes under running
    /// streams (fence, promotion, a fresh copy): shippers started before
    /// end, and acknowledgements collected before are forgotten.
    generation: std::sync::atomic::AtomicU64,
}

impl Replication {
    /// Loads the node's state, fences writes on a secondary, and resumes
    /// its stream if the service was running.
    pub fn open(
        store: Arc<Store>,
        on_change: ChangeHook,
        options: ReplicationOptions,
    ) -> ReplResult<Arc<Replication>> {
        let file = StateFile::new(store.data_dir());
        let state = file.load()?;
        let archive = options
            .archive_dir
            .as_deref()
            .map(crate::archive::WalArchive::open)
            .transpose()?;
        let node = Arc::new(Replication {
            store,
            archive,
            file,
            state: Mutex::new(state.clone()),
            statements: tokio::sync::Mutex::new(()),
            on_change,
            receiver: Mutex::new(None),
            status: Arc::new(StatusBoard::default()),
            dirty: std::sync::atomic::AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
        });
        if state.role == Role::Secondary {
            node.store.set_writable(false);
        } else {
            system::ensure_system_id(&node.store.engine())?;
        }
        if state.role == Role::Secondary && state.service == Service::Running {
            node.start_receiver(&state)?;
        }
        Ok(node)
    }

    pub fn state(&self) -> NodeState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn role(&self) -> Role {
        self.state().role
    }

    /// Waits until a secondary has reached `level` for the commit at
    /// `lsn`, at most `timeout`.
    pub async fn wait_for_secondary(
        &self,
        lsn: u64,
        level: crate::status::AckLevel,
        timeout: std::time::Duration,
    ) -> SyncWait {
        match self.role() {
            // A standalone node has no secondary to wait for.
            Role::Default => return SyncWait::Confirmed,
            // Demoted between the local commit and this wait: nothing
            // will replicate the commit from here (it may be discarded
            // when the node re-attaches), so it is not confirmed.
            Role::Secondary => return SyncWait::RoleChanged,
            Role::Primary => {}
        }
        // A demotion or promotion while waiting ends the wait unconfirmed
        // (it also resets the acknowledgements).
        let generation = self.generation();
        // A demotion closes writes before it bumps the generation and
        // saves the role: a wait that starts in between (this generation
        // already the new one, the role still PRIMARY) sees the fence.
        if !self.store.is_writable() {
            return SyncWait::RoleChanged;
        }
        let mut acks = self.status.acks.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            acks.wait_for(|a| a.reached(level, lsn) || self.generation() != generation),
        )
        .await;
        if self.generation() != generation {
            SyncWait::RoleChanged
        } else if waited.is_ok_and(|r| r.is_ok_and(|a| a.reached(level, lsn))) {
            SyncWait::Confirmed
        } else {
            SyncWait::TimedOut
        }
    }

    /// This node's LSN: the sequence number of its last write.
    pub fn local_lsn(&self) -> u64 {
        self.store.engine().latest_sequence_number()
    }

    /// Saves a new role/service state. Slots are owned by the slot code
    /// (updated in memory under the lock), so they are kept as they are.
    pub(crate) fn save(&self, mut state: NodeState) -> ReplResult<()> {
        let mut current = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.slots = current.slots.clone();
        self.file.save(&state)?;
        *current = state;
        self.dirty.store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Changes the state without writing it (frequent slot positions);
    /// `f` returns whether it changed anything.
    pub(crate) fn update_state_in_memory(&self, f: impl FnOnce(&mut NodeState) -> bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if f(&mut state) {
            self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Writes in-memory changes.
    pub(crate) fn save_if_dirty(&self) -> ReplResult<()> {
        let current = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = self.file.save(&current) {
                self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Runs a REPLICATE statement; returns the message for the client.
    pub async fn execute(self: &Arc<Self>, command: Command) -> ReplResult<String> {
        let _one_at_a_time = self.statements.lock().await;
        match command {
            Command::SetPrimary(url) => self.set_primary(&url).await,
            Command::SetRole(role) => self.set_role(role).await,
            Command::Service(action) => self.service(action).await,
        }
    }

    async fn set_primary(self: &Arc<Self>, url: &str) -> ReplResult<String> {
        let state = self.state();
        if state.role == Role::Primary {
            return Err(ReplError::WrongRole(
                "REPLICATE SET PRIMARY cannot run on a PRIMARY node (demote it first with REPLICATE SET ROLE SECONDARY)".into(),
            ));
        }
        let parsed = PrimaryUrl::parse(url)
            .map_err(|e| ReplError::Failed(format!("invalid primary URL: {e}")))?;
        receiver::validate_primary(&parsed).await?;
        let mut next = state.clone();
        next.primary_url = Some(url.to_string());
        next.role = Role::Secondary;
        self.fence();
        self.save(next.clone())?;
        if state.role != Role::Secondary {
            (self.on_change)();
        }
        if next.service == Service::Running {
            self.stop_receiver();
            self.start_receiver(&next)?;
        }
        info!(primary = %parsed.masked(), "primary set; this node is a SECONDARY");
        Ok(format!(
            "primary set to {}; this node is a SECONDARY",
            parsed.masked()
        ))
    }

    async fn set_role(self: &Arc<Self>, role: Role) -> ReplResult<String> {
        let state = self.state();
        if state.role == Role::Primary && role == Role::Primary {
            return Err(ReplError::WrongRole(
                "this node is already the PRIMARY".into(),
            ));
        }
        let mut next = state.clone();
        next.role = role;
        match (state.role, role) {
            (Role::Secondary, Role::Primary | Role::Default) => {
                // Promotion: stop replaying (what was received is applied
                // already; wait until the task is really gone), start a
                // new epoch, open for writes.
                self.stop_receiver_and_wait().await;
                let handover = self.take_over_after_stop(&state).await;
                self.new_generation();
                let engine = self.store.engine();
                engine.flush_wal()?;
                let history = system::epoch_history(&engine)?;
                let epoch = system::current_epoch(&history).epoch.max(state.epoch) + 1;
                let lsn = system::begin_epoch(&engine, epoch)?;
                next.epoch = epoch;
                next.service = Service::None;
                self.save(next)?;
                (self.on_change)();
                self.store.set_writable(true);
                self.status.update_receiver(|r| r.state = "stopped".into());
                info!(epoch, lsn, role = %role, "promoted");
                Ok(format!(
                    "this node is now {role} in epoch {epoch} (from LSN {}){}",
                    format_lsn(lsn),
                    handover.unwrap_or_default()
                ))
            }
            (_, Role::Secondary) => {
                self.fence();
                self.save(next)?;
                (self.on_change)();
                let lsn = self.store.engine().latest_sequence_number();
                Ok(format!(
                    "this node is now SECONDARY (read-only) at LSN {}",
                    format_lsn(lsn)
                ))
            }
            _ => {
                self.save(next)?;
                Ok(format!("this node is now {role}"))
            }
        }
    }

    async fn service(self: &Arc<Self>, action: ServiceAction) -> ReplResult<String> {
        let state = self.state();
        let wrong_role = |needed: &str| {
            ReplError::WrongServiceState(format!(
                "REPLICATE SET SERVICE {action} must run on a {needed} node (this node is {})",
                state.role
            ))
        };
        let wrong_state = |why: &str| {
            ReplError::WrongServiceState(format!(
                "REPLICATE SET SERVICE {action}: {why} (service state is {})",
                state.service
            ))
        };
        match action {
            ServiceAction::Drop => {
                if state.role != Role::Default {
                    return Err(wrong_role("DEFAULT"));
                }
                self.stop_receiver();
                if let (Some(url), Some(slot)) =
                    (state.primary_url.as_deref(), state.slot.as_deref())
                {
                    // Best effort: the primary may be gone for good.
                    if let Ok(url) = PrimaryUrl::parse(url) {
                        if let Err(e) = receiver::drop_slot(&url, slot).await {
                            warn!(error = %e, "could not drop the slot on the primary");
                        }
                    }
                }
                let mut next = state.clone();
                next.service = Service::None;
                next.primary_url = None;
                next.slot = None;
                self.save(next)?;
                Ok("replication service dropped".into())
            }
            _ if state.role != Role::Secondary => Err(wrong_role("SECONDARY")),
            ServiceAction::Create => {
                if state.service != Service::None {
                    return Err(wrong_state("the service already exists"));
                }
                let url = self.primary_url(&state)?;
                let slot = state.slot.clone().unwrap_or_else(new_slot_name);
                let copied = receiver::prepare(self, &url, &slot).await?;
                let mut next = self.state();
                next.service = Service::Created;
                next.slot = Some(slot.clone());
                self.save(next)?;
                let lsn = self.store.engine().latest_sequence_number();
                Ok(if copied {
                    format!(
                        "replication service created (slot {slot}); initial copy done at LSN {}",
                        format_lsn(lsn)
                    )
                } else {
                    format!(
                        "replication service created (slot {slot}); no copy needed at LSN {}",
                        format_lsn(lsn)
                    )
                })
            }
            ServiceAction::Start => {
                if !matches!(state.service, Service::Created | Service::Stopped) {
                    return Err(wrong_state(if state.service == Service::None {
                        "run REPLICATE SET SERVICE CREATE first"
                    } else {
                        "the service is already running"
                    }));
                }
                let mut next = state.clone();
                next.service = Service::Running;
                // Saved before the stream starts: the stream saves the
                // primary's epoch, which a later save here would undo.
                self.save(next.clone())?;
                if let Err(e) = self.start_receiver(&next) {
                    self.save(state)?;
                    return Err(e);
                }
                Ok("replication service started".into())
            }
            ServiceAction::Stop => {
                if state.service != Service::Running {
                    return Err(wrong_state("the service is not running"));
                }
                let stopped = self.request_stop().await?;
                let mut next = self.state();
                next.service = Service::Stopped;
                self.save(next)?;
                Ok(format!(
                    "replication stopped, consistent at LSN {} (checksum {})",
                    format_lsn(stopped.0),
                    stopped.1
                ))
            }
        }
    }

    fn primary_url(&self, state: &NodeState) -> ReplResult<PrimaryUrl> {
        let url = state.primary_url.as_deref().ok_or_else(|| {
            ReplError::WrongServiceState(
                "no primary is set: run REPLICATE SET PRIMARY <url> first".into(),
            )
        })?;
        PrimaryUrl::parse(url).map_err(|e| ReplError::Failed(format!("invalid primary URL: {e}")))
    }

    /// A node of a later epoch exists: never accept writes in this one
    /// again. The node becomes a SECONDARY (without a primary) until an
    /// operator re-attaches it.
    pub(crate) fn superseded(&self) -> ReplResult<()> {
        self.fence();
        let mut state = self.state();
        if state.role != Role::Secondary {
            state.role = Role::Secondary;
            self.save(state)?;
            (self.on_change)();
        }
        Ok(())
    }

    /// A promotion after a consistent SERVICE STOP (planned switchover)
    /// first takes over what the old primary committed after the stop
    /// point, if it has been demoted since (see
    /// `receiver::take_over_tail`). Returns a note for the operator.
    async fn take_over_after_stop(self: &Arc<Self>, state: &NodeState) -> Option<String> {
        if state.service != Service::Stopped {
            return None;
        }
        let url = PrimaryUrl::parse(state.primary_url.as_deref()?).ok()?;
        let slot = state.slot.as_deref()?;
        match receiver::take_over_tail(self, &url, slot).await {
            Ok(receiver::Handover::Took { from, to }) => {
                info!(
                    from,
                    to, "took over the old primary's commits after the stop point"
                );
                Some(format!(
                    "; took over the old primary's commits after the stop point (LSN {} to {})",
                    format_lsn(from + 1),
                    format_lsn(to)
                ))
            }
            Ok(receiver::Handover::Nothing | receiver::Handover::Unreachable) => None,
            Ok(receiver::Handover::StillPrimary) => {
                warn!("promoted while the old primary is still a PRIMARY");
                Some(
                    "; WARNING: the old primary is still a PRIMARY, and what it commits is not on \
                     this node: demote it (REPLICATE SET ROLE SECONDARY) and re-attach it"
                        .into(),
                )
            }
            Err(e) => {
                warn!(error = %e, "could not take over the old primary's last commits");
                Some(format!(
                    "; WARNING: the old primary's commits after the stop point were not taken over ({e})"
                ))
            }
        }
    }

    /// Closes the node for ordinary writes.
    fn fence(&self) {
        self.store.set_writable(false);
        self.new_generation();
    }

    /// See the `generation` field.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn new_generation(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.status
            .acks
            .send_replace(crate::status::Acks::default());
    }

    fn start_receiver(self: &Arc<Self>, state: &NodeState) -> ReplResult<()> {
        let url = self.primary_url(state)?;
        let slot = state.slot.clone().unwrap_or_else(new_slot_name);
        let handle = receiver::spawn(self.clone(), url, slot);
        if let Some(old) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(handle)
        {
            old.abort();
        }
        Ok(())
    }

    async fn stop_receiver_and_wait(&self) {
        let handle = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            handle.abort_and_wait().await;
        }
    }

    /// True while this node runs a receiver (its data grows by replay).
    pub(crate) fn has_receiver(&self) -> bool {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn stop_receiver(&self) {
        if let Some(handle) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            handle.abort();
        }
    }

    /// SERVICE STOP: has the receiver stop at a point both nodes agree on.
    async fn request_stop(self: &Arc<Self>) -> ReplResult<(u64, String)> {
        let handle = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(handle) = handle else {
            return Err(ReplError::Failed(
                "the replication stream is not running".into(),
            ));
        };
        match handle.stop().await {
            Ok(point) => Ok(point),
            Err(e) => {
                warn!(error = %e, "SERVICE STOP failed; the stream keeps running");
                // The receiver task ended; restart it so streaming goes on.
                let _ = self.start_receiver(&self.state());
                Err(e)
            }
        }
    }
}

fn new_slot_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("duet_slot_{nanos:08x}")
}
