//! A fault-injecting TCP proxy on loopback, placed between a secondary and
//! its primary or between clients and a node.
//!
//! The proxy forwards bytes both ways and, on command: delays them
//! ([`Fault::Latency`]), caps their rate ([`Fault::Bandwidth`]), holds them
//! ([`Fault::BlackHole`]: nothing moves, new connections included, until the
//! fault is lifted; held data is then delivered, as after a partition that
//! heals before TCP gives up), refuses new connections ([`FaultProxy::refuse`]),
//! resets every open connection with RST ([`FaultProxy::reset_connections`]),
//! freezes the open connections for good while new ones work
//! ([`FaultProxy::half_open`]: each end still believes in a peer that never
//! answers, as after a host crash), and flips bytes in the data it forwards
//! towards the client ([`FaultProxy::corrupt_to_client`]).
//!
//! It runs on its own tokio runtime, so blocking tests drive it directly.

use std::future::pending;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant};

/// How the data of every connection is disturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forwarded as it comes.
    #[default]
    None,
    /// Each chunk is delivered this much later than it was read.
    Latency(Duration),
    /// At most this many bytes per second, each direction.
    Bandwidth(u64),
    /// Nothing is forwarded and no new connection reaches the target until
    /// the fault is lifted.
    BlackHole,
    /// Each connection stops delivering to the client after this many
    /// chunks (a peer that goes silent mid-conversation, e.g. right after
    /// the startup handshake).
    StallAfter(u32),
}

/// What every connection task watches.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    fault: Fault,
    /// New connections are closed at once.
    refuse: bool,
    /// Bumped by reset_connections: connections older than this are reset.
    resets: u64,
    /// Bumped by half_open: connections older than this freeze.
    freezes: u64,
}

struct Shared {
    control: watch::Sender<Control>,
    /// Bytes still to be flipped towards the client (one per chunk).
    corrupt_to_client: AtomicU32,
    open: AtomicUsize,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    /// The accept number (1-based) of the newest connection that
    /// `StallAfter` holds, 0 if none.
    last_stalled: AtomicU64,
}

/// A running proxy; stopped (every connection dropped) on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `target`.
    pub fn start(target: SocketAddr) -> FaultProxy {
        assert!(target.ip().is_loopback(), "the proxy only targets loopback");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = StdListener::bind("127.0.0.1:0").expect("bind proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            control: watch::channel(Control::default()).0,
            corrupt_to_client: AtomicU32::new(0),
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            last_stalled: AtomicU64::new(0),
        });
        let accept_shared = shared.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((client, _)) = listener.accept().await {
                let id = accept_shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(client, id, target, accept_shared.clone()));
            }
        });
        FaultProxy {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `fault` to every connection, open and new.
    pub fn set(&self, fault: Fault) {
        self.shared.control.send_modify(|c| c.fault = fault);
    }

    /// New connections are closed as soon as they are accepted (or, with
    /// false, forwarded again).
    pub fn refuse(&self, refuse: bool) {
        self.shared.control.send_modify(|c| c.refuse = refuse);
    }

    /// Resets (RST) every open connection, both ends.
    pub fn reset_connections(&self) {
        self.shared.control.send_modify(|c| c.resets += 1);
    }

    /// Freezes every open connection for good: nothing more is read or
    /// written and nothing is closed. New connections are not affected.
    pub fn half_open(&self) {
        self.shared.control.send_modify(|c| c.freezes += 1);
    }

    /// Cuts the link: refuses new connections and resets the open ones.
    pub fn cut(&self) {
        self.refuse(true);
        self.reset_connections();
    }

    /// Restores the link after [`FaultProxy::cut`] or any fault.
    pub fn heal(&self) {
        self.shared.control.send_modify(|c| {
            c.refuse = false;
            c.fault = Fault::None;
        });
    }

    /// Flips one byte in each of the next `chunks` chunks sent towards the
    /// client.
    pub fn corrupt_to_client(&self, chunks: u32) {
        self.shared
            .corrupt_to_client
            .fetch_add(chunks, Ordering::SeqCst);
    }

    /// Drops the flips not made yet (the fault's window is over: a later,
    /// unrelated connection must not get them).
    pub fn stop_corrupting(&self) {
        self.shared.corrupt_to_client.store(0, Ordering::SeqCst);
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// The accept number (as counted by [`FaultProxy::accepted`]) of the
    /// newest connection that `StallAfter` holds, 0 if none.
    pub fn last_stalled(&self) -> u64 {
        self.shared.last_stalled.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far, both directions.
    pub fn forwarded_bytes(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// Counts an open connection for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Forwards connection number `id` (1-based, in accept order).
async fn serve(client: TcpStream, id: u64, target: SocketAddr, shared: Arc<Shared>) {
    let mut control = shared.control.subscribe();
    let born = *control.borrow_and_update();
    if born.refuse {
        abort(&client);
        return;
    }
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(shared.clone());
    // A black hole swallows the connection attempt too.
    while control.borrow().fault == Fault::BlackHole {
        if control.changed().await.is_err() {
            return;
        }
    }
    let Ok(server) = TcpStream::connect(target).await else {
        abort(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Kept to reset both sockets: the pumps own the halves.
    let (Ok(client_ctl), Ok(server_ctl)) = (dup(&client), dup(&server)) else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        client_read,
        server_write,
        Direction::ToServer,
        id,
        born,
        control.clone(),
        shared.clone(),
    );
    let down = pump(
        server_read,
        client_write,
        Direction::ToClient,
        id,
        born,
        control.clone(),
        shared.clone(),
    );
    tokio::select! {
        _ = futures::future::join(up, down) => {}
        _ = until(&mut control, |c| c.resets > born.resets) => {
            // Dropping the pumps closes the halves; with SO_LINGER 0 the
            // last close of each socket sends RST.
            abort_std(&client_ctl);
            abort_std(&server_ctl);
        }
    }
}

/// Forwards one direction: a reader stamps chunks with their arrival time,
/// a writer delivers them according to the current fault.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    id: u64,
    born: Control,
    control: watch::Receiver<Control>,
    shared: Arc<Shared>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut control = control;
        let mut delivered = 0u32;
        while let Some((read_at, mut chunk)) = rx.recv().await {
            loop {
                let now = *control.borrow_and_update();
                if now.freezes > born.freezes {
                    pending::<()>().await;
                }
                match now.fault {
                    Fault::BlackHole => {
                        if control.changed().await.is_err() {
                            return;
                        }
                    }
                    Fault::Latency(delay) => {
                        tokio::select! {
                            _ = sleep_until(read_at + delay) => break,
                            r = control.changed() => if r.is_err() { return },
                        }
                    }
                    Fault::StallAfter(n) if direction == Direction::ToClient && delivered >= n => {
                        shared.last_stalled.fetch_max(id, Ordering::SeqCst);
                        pending::<()>().await;
                    }
                    Fault::None | Fault::Bandwidth(_) | Fault::StallAfter(_) => break,
                }
            }
            delivered = delivered.saturating_add(1);
            if direction == Direction::ToClient && take_one(&shared.corrupt_to_client) {
                let middle = chunk.len() / 2;
                chunk[middle] ^= 0xff;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            shared
                .forwarded
                .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            let fault = control.borrow().fault;
            if let Fault::Bandwidth(rate) = fault {
                let secs = chunk.len() as f64 / rate.max(1) as f64;
                sleep(Duration::from_secs_f64(secs)).await;
            }
        }
        // The reader saw EOF: pass the half-close on.
        let _ = to.shutdown().await;
    };
    futures::future::join(reader, writer).await;
}

/// Waits until `cond` holds for the control state.
async fn until(control: &mut watch::Receiver<Control>, cond: impl Fn(&Control) -> bool) {
    loop {
        if cond(&control.borrow_and_update()) {
            return;
        }
        if control.changed().await.is_err() {
            return pending().await;
        }
    }
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn dup(stream: &TcpStream) -> std::io::Result<socket2::Socket> {
    socket2::SockRef::from(stream).try_clone()
}

fn abort(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

fn abort_std(socket: &socket2::Socket) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}
