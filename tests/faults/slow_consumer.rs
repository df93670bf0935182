//! 3. A consumer that stops polling: the bounded inbox.

use super::*;

#[test]
fn slow_consumer() {
    let _suite = exclusive();
    let total: u64 = if soak() { 250_000 } else { 50_000 };
    let capacity = 1000usize;
    let pad = "x".repeat(500);
    let message = |n: u64| json!({"n": n, "pad": pad}).to_string();
    let message_bytes = message(total).len();
    let channel = "project.demo.slow";
    // A bulk test of the client's inbox, not of the gateway's limits: the gateway
    // lets this sender go faster than its default per-connection budget, and
    // queues more than its default 4 MiB per subscriber.
    let gw = Gateway::start_with(&[
        "--max-frames-per-second",
        "1000000",
        "--max-bytes-per-second",
        "1000000000",
        "--max-queued-bytes",
        "67108864",
    ]);
    let mut c = config(&gw);
    c.inbound_queue_capacity = capacity;
    let receiver = connected(c);
    subscribed(&receiver, channel);
    let sender = connected(config(&gw));

    // Publishes `count` messages from `first`, paced so that nothing is dropped
    // before the receiving client: the sender's own buffer stays short, and the
    // receiver's socket is never more than 10,000 behind (the gateway's per-
    // connection outbox, 64 MiB here, drops beyond that). Only the inbox,
    // which nobody drains, may drop.
    let send = |first: u64, count: u64| {
        for n in first..first + count {
            sender.publish_json(channel, &message(n)).unwrap();
            if n % 100 == 0 {
                wait_until("the sender's buffer to drain", WAIT, || counter(&sender, "queued_outbound") < 500);
                wait_until("the receiver to catch up", WAIT, || {
                    n.saturating_sub(counter(&receiver, "received")) < 10_000
                });
            }
        }
        wait_until("every message received", WAIT, || counter(&receiver, "received") == first + count);
    };
    // Warm-up: fill the inbox to capacity once and empty it, so allocator pools
    // and buffers are at their working size before the baseline.
    send(0, 2 * capacity as u64);
    drain(&receiver);
    let warm = 2 * capacity as u64;
    let dropped_before = counter(&receiver, "dropped_inbound");
    let rss_before = rss_kib();

    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    send(warm, total);
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let rss_after = rss_kib();
    let growth_kib = peak.load(Ordering::Relaxed).max(rss_after).saturating_sub(rss_before);

    // Bound: the inbox holds `capacity` messages; each costs its text plus the
    // Message/Arc/String headers and allocator rounding (counted as the text
    // again + 512 B), plus 8 MiB for the runtime's buffers and allocator slack.
    // An unbounded inbox would grow by at least (total - capacity) × text ≈ 24 MiB.
    let bound_kib = (capacity * (2 * message_bytes + 512)) as u64 / 1024 + 8 * 1024;
    assert!(growth_kib < bound_kib, "resident memory grew {growth_kib} KiB, bound {bound_kib} KiB");
    let dropped = counter(&receiver, "dropped_inbound") - dropped_before;
    assert_eq!(dropped, total - capacity as u64, "dropped_inbound = pushed - capacity");
    assert_eq!(receiver.pending_events(), capacity);
    let newest = warm + total - 1;
    assert_eq!(receiver.value(channel, "n"), Some(newest as f64), "value() holds the newest");
    let kept: Vec<u64> = drain(&receiver)
        .into_iter()
        .map(|e| match e {
            Event::Message(m) => json_of(&m.body)["n"].as_u64().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kept, (newest + 1 - capacity as u64..=newest).collect::<Vec<_>>(), "the newest are kept, in order");
    assert_eq!(counter(&sender, "dropped_outbound"), 0);
    figure(
        "slow_consumer",
        format!(
            "{total} messages of {message_bytes} B in {:.1} s, no next_event, inbound_queue_capacity {capacity}: \
             dropped_inbound {dropped} (exact), VmRSS +{:.1} MiB (peak; bound {:.1} MiB, unbounded would be \
             >{:.0} MiB), value() = newest {newest}",
            elapsed.as_secs_f64(),
            growth_kib as f64 / 1024.0,
            bound_kib as f64 / 1024.0,
            ((total - capacity as u64) * message_bytes as u64) as f64 / (1024.0 * 1024.0),
        ),
    );
}
