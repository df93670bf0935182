//! The fault proxy itself: every control does what it says.

use super::*;

/// A TCP echo server on its own thread, one thread per connection.
fn echo_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn open(proxy: &FaultProxy) -> StdTcpStream {
    let stream = StdTcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Sends `data` and reads the same number of bytes back; returns the round trip.
fn echo(stream: &mut StdTcpStream, data: &[u8]) -> Duration {
    let started = Instant::now();
    stream.write_all(data).unwrap();
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, data, "the proxy changed the bytes");
    started.elapsed()
}

#[test]
fn proxy_self_check() {
    let _suite = shared();
    let proxy = FaultProxy::start(echo_server());
    let mut stream = open(&proxy);
    echo(&mut stream, b"plain");
    wait_until("the proxy to count the connection", WAIT, || proxy.connections() == 1);

    let data: Vec<u8> = (0..3000u32).map(|n| (n % 251) as u8).collect();
    proxy.slice(7);
    echo(&mut stream, &data);
    proxy.slice(0);

    proxy.delay(Duration::from_millis(100));
    let delayed = echo(&mut stream, b"late");
    assert!(delayed >= Duration::from_millis(200), "100 ms each way, round trip {delayed:?}");
    proxy.delay(Duration::ZERO);

    proxy.throttle(2000);
    let throttled = echo(&mut stream, &data[..1000]);
    // 1000 bytes at 2000 B/s take ~0.5 s each way; the two directions overlap
    // (the echo starts with the first piece), so the round trip is at least ~0.45 s.
    assert!(throttled >= Duration::from_millis(400), "throttled round trip {throttled:?}");
    proxy.throttle(0);

    proxy.black_hole(true);
    stream.write_all(b"held").unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 4];
    assert!(stream.read(&mut byte).is_err(), "nothing may come back through a black hole");
    assert_eq!(proxy.open_connections(), 1, "a black hole keeps the sockets open");
    proxy.black_hole(false);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"held", "held bytes are forwarded once the path is back");

    assert_eq!(proxy.drop_all(), 1);
    assert_eq!(stream.read(&mut byte).unwrap(), 0, "drop_all closes with a FIN");
    let mut stream = open(&proxy);
    echo(&mut stream, b"again");
    assert_eq!(proxy.reset_all(), 1);
    let reset = stream.read(&mut byte).unwrap_err();
    assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset, "reset_all sends a RST: {reset}");

    proxy.refuse(true);
    let mut refused = open(&proxy);
    let outcome = refused.read(&mut byte);
    assert!(matches!(outcome, Ok(0) | Err(_)), "a refused connection is closed at once: {outcome:?}");
    assert_eq!(proxy.refused(), 1);
    proxy.refuse(false);
    echo(&mut open(&proxy), b"open again");
    assert_eq!(proxy.connections(), 3);
    figure(
        "proxy_self_check",
        format!(
            "slice 7 B intact; delay 100 ms -> round trip {:.0} ms; throttle 2000 B/s -> 1000 B echoed in {:.0} ms; \
             black hole holds and releases; FIN, RST and refuse observed",
            ms(delayed),
            ms(throttled)
        ),
    );
}
