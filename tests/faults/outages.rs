//! 1-2. Outage storms and a long outage: reconnection, resubscription, the outbound buffer.

use super::*;

/// The nominal reconnect delay before attempt `n` (0-based): `min(base·2ⁿ, max)`,
/// written out here rather than taken from the library so the check is independent.
fn nominal_delay(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[test]
fn outage_storm() {
    let _suite = exclusive();
    count_library_panics();
    let cycles = if soak() { 1000 } else { 200 };
    let (base, max) = (Duration::from_millis(2), Duration::from_millis(20));
    let channels = ["project.demo.storm.a", "project.demo.storm.b", "project.demo.storm.c"];
    let gw = Gateway::start();
    let proxy = FaultProxy::start(gw.port());
    let mut c = via_proxy(&proxy);
    c.reconnect_base = base;
    c.reconnect_max = max;
    let client = connected(c);
    for channel in channels {
        subscribed(&client, channel);
    }

    // A steady stream on every channel from a second client that is not behind the proxy.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let publisher = connected(config(&gw));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for channel in channels {
                    publisher.publish_json(channel, &n.to_string()).unwrap();
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let flowing = |client: &Client| {
        let mut seen = BTreeSet::new();
        wait_event(client, "a message on every channel", |e| {
            if let Event::Message(m) = e {
                seen.insert(m.channel.clone());
            }
            seen.len() == channels.len()
        });
    };
    flowing(&client);
    let (threads_before, fds_before) = (thread_count(), fd_count());

    let started = Instant::now();
    let mut delays = Vec::with_capacity(cycles);
    let mut attempts_before = client.status()["reconnect_attempts"].as_u64().unwrap() as u32;
    for cycle in 0..cycles {
        let cut = if cycle % 2 == 0 { proxy.drop_all() } else { proxy.reset_all() };
        assert!(cut >= 1, "cycle {cycle}: nothing to cut");
        let cut_at = proxy.last_cut().unwrap();
        wait_event(&client, "disconnected", |e| matches!(e, Event::Disconnected { .. }));
        // Until resubscribed and flowing: every channel acknowledged, then a
        // message on each after its acknowledgement.
        let (mut reconnected, mut acked, mut flowed) = (false, BTreeSet::new(), BTreeSet::new());
        wait_event(&client, "resubscription and flow", |e| {
            match e {
                Event::Connected { .. } => reconnected = true,
                Event::SubAck { channel, .. } if reconnected => {
                    acked.insert(channel.clone());
                }
                Event::Message(m) if acked.contains(&m.channel) => {
                    flowed.insert(m.channel.clone());
                }
                Event::Disconnected { reason } => panic!("cycle {cycle}: a second disconnect: {reason}"),
                Event::Error(error) => panic!("cycle {cycle}: error event {error:?}"),
                _ => {}
            }
            flowed.len() == channels.len()
        });
        // The first connection the proxy accepted after the cut is the next attempt.
        let accepted_at = proxy.first_accept_after(cut_at).expect("the reconnect went through the proxy");
        let waited = accepted_at - cut_at;
        let nominal = nominal_delay(base, max, attempts_before);
        assert!(
            waited >= nominal / 2,
            "cycle {cycle}: reconnected {waited:?} after the cut, before half the nominal {nominal:?} of attempt {}",
            attempts_before + 1
        );
        delays.push(waited);
        let attempts = client.status()["reconnect_attempts"].as_u64().unwrap() as u32;
        assert_eq!(attempts, attempts_before + 1, "cycle {cycle}: one attempt per cut");
        attempts_before = attempts;
    }
    let elapsed = started.elapsed();
    assert_eq!(counter(&client, "reconnects"), cycles as u64);
    assert_eq!(client.state(), State::Connected);
    let (threads_after, fds_after) = (thread_count(), fd_count());
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    assert_eq!(LIBRARY_PANICS.load(Ordering::SeqCst), 0, "a library thread panicked");
    assert!(threads_after <= threads_before + 2, "threads grew from {threads_before} to {threads_after}");
    assert!(fds_after <= fds_before + 4, "descriptors grew from {fds_before} to {fds_after}");
    delays.sort();
    // With a 20 ms cap the median reconnect must be far below the 1 s default
    // base: proof the configured schedule is the one in use (a bound of sanity,
    // not of speed).
    assert!(percentile(&delays, 0.5) < Duration::from_millis(500), "median {:?}", percentile(&delays, 0.5));
    figure(
        "outage_storm",
        format!(
            "{cycles} cuts ({} FIN, {} RST) in {:.1} s: {cycles}/{cycles} reconnected, 3/3 channels resubscribed \
             and flowing after each; cut->reconnect min {:.1} / median {:.1} / max {:.1} ms (nominal 2..20 ms, \
             jitter [x/2, x]); threads {threads_before}->{threads_after}, fds {fds_before}->{fds_after}; panics 0",
            cycles.div_ceil(2),
            cycles / 2,
            elapsed.as_secs_f64(),
            ms(delays[0]),
            ms(percentile(&delays, 0.5)),
            ms(*delays.last().unwrap()),
        ),
    );
}

// ---------------------------------------------------------------------------
// 2. Long outage

#[test]
fn long_outage() {
    let _suite = shared();
    let outage = if soak() { Duration::from_secs(60) } else { Duration::from_secs(3) };
    let tick = Duration::from_millis(10); // 100 publishes a second
    let buffer = 100; // outbound_max_messages: fewer than an outage's publishes
    let channel = "project.demo.outage";
    let mut gw = Gateway::start();
    let mut c = config(&gw);
    c.outbound_max_messages = buffer;
    let client = connected(c);
    subscribed(&client, channel);

    // One loop publishes on a fixed schedule and collects the echoes (the gateway
    // delivers to the sender too); the outage is steps of the same loop.
    let mut published = 0u64;
    let mut received: Vec<u64> = Vec::new();
    let mut collect = |client: &Client, received: &mut Vec<u64>| {
        for event in drain(client) {
            if let Event::Message(m) = event {
                received.push(json_of(&m.body).as_u64().unwrap());
            }
        }
    };
    let publish_for = |span: Duration, published: &mut u64, received: &mut Vec<u64>| {
        // A fresh schedule per span: no catch-up burst after a pause of the loop.
        let mut next = Instant::now();
        let end = next + span;
        while Instant::now() < end {
            client.publish_json(channel, &published.to_string()).unwrap();
            *published += 1;
            collect(&client, received);
            next += tick;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    };
    publish_for(Duration::from_millis(500), &mut published, &mut received);

    // The kill happens when every earlier publish has been echoed: a frame the
    // kernel accepted just before SIGKILL is lost with no trace any client could
    // count (TCP has no delivery receipt and the protocol no publish ack).
    wait_until("the echoes before the kill", WAIT, || {
        collect(&client, &mut received);
        received.len() as u64 == published
    });
    gw.kill();
    wait_until("the client to notice the outage", WAIT, || client.state() != State::Connected);
    let first_in_outage = published;
    let dropped_before = counter(&client, "dropped_outbound");
    publish_for(outage, &mut published, &mut received);
    let in_outage = published - first_in_outage;
    let status = client.status();
    assert_eq!(status["counters"]["queued_outbound"], buffer as u64, "the buffer is full, not larger");
    assert_eq!(
        status["counters"]["dropped_outbound"].as_u64().unwrap() - dropped_before,
        in_outage - buffer as u64,
        "exactly the oldest beyond the buffer are dropped"
    );
    gw.restart();
    publish_for(Duration::from_secs(1), &mut published, &mut received);
    let dropped = wait_for_accounting(&client, published, &mut received, &mut collect);

    // In order, and the missing ones are exactly the oldest of the outage.
    assert!(received.windows(2).all(|w| w[0] < w[1]), "echoes out of order");
    let missing: Vec<u64> = {
        let got: BTreeSet<u64> = received.iter().copied().collect();
        (0..published).filter(|n| !got.contains(n)).collect()
    };
    assert_eq!(missing.len() as u64, dropped, "dropped_outbound counts exactly the missing publishes");
    assert_eq!(missing, (first_in_outage..first_in_outage + dropped).collect::<Vec<_>>(), "oldest dropped first");
    assert_eq!(received.len() as u64 + dropped, published);
    assert_eq!(counter(&client, "received"), received.len() as u64);
    figure(
        "long_outage",
        format!(
            "{:.0} s outage at 100 msg/s, outbound_max_messages {buffer}: published {published}, {in_outage} during \
             the outage; dropped_outbound {dropped} (= the oldest {dropped}, exact), received {} in order; \
             received + dropped = published",
            outage.as_secs_f64(),
            received.len()
        ),
    );
}

/// Waits until every publish is echoed or counted as dropped; returns the dropped count.
fn wait_for_accounting(
    client: &Client,
    published: u64,
    received: &mut Vec<u64>,
    collect: &mut impl FnMut(&Client, &mut Vec<u64>),
) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        collect(client, received);
        let dropped = counter(client, "dropped_outbound");
        if received.len() as u64 + dropped == published && counter(client, "queued_outbound") == 0 {
            return dropped;
        }
        assert!(
            Instant::now() < deadline,
            "accounting never closed: {} received + {dropped} dropped of {published}; status {}",
            received.len(),
            client.status()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
