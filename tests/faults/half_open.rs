//! 4. Half-open paths: liveness and bounded disconnects.

use super::*;

/// Liveness declares a connection dead after 2 silent heartbeat intervals; the
/// tolerance covers timer and scheduling slack on a loaded 2-core machine.
const HEARTBEAT: Duration = Duration::from_millis(300);
const LIVENESS_TOLERANCE: Duration = Duration::from_millis(400);

/// Breaks the path with `fault`, and returns how long until the client reported
/// the connection dead, with the reason.
fn time_to_detect(client: &Client, proxy: &FaultProxy, fault: impl FnOnce(&FaultProxy)) -> (Duration, String) {
    drain(client);
    let started = Instant::now();
    fault(proxy);
    let Event::Disconnected { reason } =
        wait_event(client, "disconnected", |e| matches!(e, Event::Disconnected { .. }))
    else {
        unreachable!()
    };
    (started.elapsed(), reason)
}

/// `disconnect()` while the path is broken, and how long it took.
fn time_disconnect(client: &Client) -> Duration {
    let started = Instant::now();
    client.disconnect();
    let took = started.elapsed();
    assert_eq!(client.state(), State::Closed);
    took
}

#[test]
fn half_open() {
    let _suite = exclusive();
    let gw = Gateway::start();
    let proxy = FaultProxy::start(gw.port());
    let mut c = via_proxy(&proxy);
    c.heartbeat_interval = HEARTBEAT;
    let limit = HEARTBEAT * 2 + LIVENESS_TOLERANCE;
    let channel = "project.demo.half";

    // Black hole: sockets open, nothing forwarded.
    let client = connected(c.clone());
    subscribed(&client, channel);
    let (black_hole, reason) = time_to_detect(&client, &proxy, |p| p.black_hole(true));
    assert!(reason.contains("no frame") || reason.contains("stopped accepting"), "{reason}");
    assert!(black_hole <= limit, "black hole detected after {black_hole:?}, limit {limit:?}");
    // Still black-holed: the reconnect attempt hangs in its handshake.
    let attempts = proxy.connections();
    wait_until("a reconnect attempt into the black hole", WAIT, || proxy.connections() > attempts);
    let hung_handshake = time_disconnect(&client);
    assert!(hung_handshake < Duration::from_millis(500), "disconnect took {hung_handshake:?}");
    drop(client);
    // A connected client whose path goes silent: disconnect cannot complete a
    // close handshake and must give up within its budget.
    proxy.black_hole(false);
    let client = connected(c.clone());
    proxy.black_hole(true);
    let connected_silent = time_disconnect(&client);
    assert!(connected_silent < Duration::from_millis(500), "disconnect took {connected_silent:?}");
    drop(client);
    proxy.black_hole(false);
    proxy.drop_all();

    // A trickle: bytes move, but no whole frame arrives within 2 intervals.
    let client = connected(c.clone());
    subscribed(&client, channel);
    let (trickle, reason) = time_to_detect(&client, &proxy, |p| p.throttle(16));
    assert!(reason.contains("no frame") || reason.contains("stopped accepting"), "{reason}");
    assert!(trickle <= limit, "trickle detected after {trickle:?}, limit {limit:?}");
    let throttled_disconnect = time_disconnect(&client);
    assert!(throttled_disconnect < Duration::from_millis(500), "disconnect took {throttled_disconnect:?}");
    drop(client);

    // The path heals: a client through the same proxy works again.
    proxy.throttle(0);
    proxy.drop_all();
    let client = connected(c);
    subscribed(&client, channel);
    client.publish_json(channel, "1").unwrap();
    wait_event(&client, "a message after the path healed", |e| matches!(e, Event::Message(_)));
    figure(
        "half_open",
        format!(
            "heartbeat {} ms, limit 2 intervals + {} ms: black hole detected in {:.0} ms, trickle (16 B/s) in \
             {:.0} ms; disconnect() {:.0} ms in a hung handshake, {:.0} ms connected-and-silent, {:.0} ms throttled",
            HEARTBEAT.as_millis(),
            LIVENESS_TOLERANCE.as_millis(),
            ms(black_hole),
            ms(trickle),
            ms(hung_handshake),
            ms(connected_silent),
            ms(throttled_disconnect),
        ),
    );
}
