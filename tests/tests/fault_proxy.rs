//! The fault-injecting proxy itself, against an echo server on loopback.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use duet_tests::faults::{Fault, FaultProxy};
use duet_tests::wait_for;

/// Echoes every connection's bytes back until it closes.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn echo(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(data)?;
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back)?;
    Ok(back)
}

/// True when nothing arrives within `wait`.
fn silent(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    let result = stream.read(&mut byte);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    matches!(result, Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut)
}

#[test]
fn forwards_delays_and_caps() {
    let proxy = FaultProxy::start(echo_server());
    let mut s = connect(&proxy);
    assert_eq!(echo(&mut s, b"hello").unwrap(), b"hello");

    proxy.set(Fault::Latency(Duration::from_millis(200)));
    let started = Instant::now();
    assert_eq!(echo(&mut s, b"slow").unwrap(), b"slow");
    // Delayed both ways.
    assert!(started.elapsed() >= Duration::from_millis(400));

    proxy.set(Fault::Bandwidth(20_000));
    let started = Instant::now();
    let big = vec![7u8; 40_000];
    assert_eq!(echo(&mut s, &big).unwrap(), big);
    // 40 kB each way at 20 kB/s.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    proxy.set(Fault::None);
    wait_for("the byte count", Duration::from_secs(10), || {
        (proxy.forwarded_bytes() >= 80_000).then_some(())
    });
}

#[test]
fn a_black_hole_holds_data_until_it_heals() {
    let proxy = FaultProxy::start(echo_server());
    let mut s = connect(&proxy);
    proxy.set(Fault::BlackHole);
    s.write_all(b"held").unwrap();
    assert!(silent(&mut s, Duration::from_millis(500)));
    // New connections are swallowed too.
    let mut late = connect(&proxy);
    late.write_all(b"late").unwrap();
    assert!(silent(&mut late, Duration::from_millis(300)));
    proxy.heal();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"held");
    late.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"late");
}

#[test]
fn resets_refuses_and_freezes() {
    let proxy = FaultProxy::start(echo_server());
    let mut s = connect(&proxy);
    assert_eq!(echo(&mut s, b"x").unwrap(), b"x");
    proxy.reset_connections();
    let err = wait_for("the reset to arrive", Duration::from_secs(10), || {
        echo(&mut s, b"y").err()
    });
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );

    proxy.cut();
    let mut refused = connect(&proxy);
    assert!(echo(&mut refused, b"z").is_err());
    proxy.heal();
    let mut s = connect(&proxy);
    assert_eq!(echo(&mut s, b"again").unwrap(), b"again");

    // Half-open: the old connection stays up but silent; new ones work.
    proxy.half_open();
    s.write_all(b"void").unwrap();
    assert!(silent(&mut s, Duration::from_millis(500)));
    assert_eq!(proxy.open_connections(), 1);
    let mut fresh = connect(&proxy);
    assert_eq!(echo(&mut fresh, b"fresh").unwrap(), b"fresh");
}

#[test]
fn corrupts_bytes_towards_the_client() {
    let proxy = FaultProxy::start(echo_server());
    let mut s = connect(&proxy);
    proxy.corrupt_to_client(1);
    assert_ne!(echo(&mut s, b"abcdef").unwrap(), b"abcdef");
    assert_eq!(echo(&mut s, b"abcdef").unwrap(), b"abcdef");
}
