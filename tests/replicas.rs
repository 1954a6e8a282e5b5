//! Many replicas, one truth: three gateways on one real `redis-server` (started here on
//! a free loopback port) and one sandbox upstream.
//!
//! The tests that start `redis-server` are `#[ignore]`d (a fresh machine may not have
//! it); `.ci/install` installs it, `cargo test -- --include-ignored` runs them, and its
//! absence then fails them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    cache_of, config,
    process::{free_port, wait_for_listener},
    sandbox_settings,
};
use fingerprint_gateway::{
    config::Generation,
    proto::v1::{
        GetEventRequest, UpdateEventRequest, fingerprint_service_client::FingerprintServiceClient,
    },
    sandbox::{Credentials, Sandbox},
    server,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tonic::transport::Channel;

/// A `redis-server` on a free loopback port, killed when dropped.
struct Redis {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Redis {
    /// Starts one; fails the test when `redis-server` is not installed.
    fn start() -> Self {
        common::process::require_tool(
            "redis-server",
            Command::new("redis-server").arg("--version"),
            "apt-get install redis-server (.ci/install)",
        );
        let mut redis = Self {
            child: None,
            addr: free_port(),
        };
        redis.restart();
        redis
    }

    fn restart(&mut self) {
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &self.addr.port().to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_listener(
            &mut child,
            self.addr,
            "redis-server",
            Duration::from_secs(10),
        );
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Runs a command with the real client, for inspecting what is stored.
    async fn cmd(&self, args: &[&[u8]]) -> redis::Value {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await.unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A gateway replica, in this process, with its own cache.
struct Replica {
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

impl Replica {
    async fn start(sandbox: &Sandbox, redis_url: &str, extra: &[(&'static str, &str)]) -> Self {
        let mut settings = sandbox_settings(sandbox, Generation::V4);
        settings.push(("GATEWAY_REDIS_URL", redis_url.to_owned()));
        settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, config(&settings), async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            channel,
            stop: Some(stop),
            task,
        }
    }

    fn fp(&self) -> FingerprintServiceClient<Channel> {
        FingerprintServiceClient::new(self.channel.clone())
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

async fn sandbox() -> Sandbox {
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Credentials::default(),
    )
    .unwrap();
    sandbox.control.record(1_000_000);
    sandbox
}

fn event(id: &str) -> tonic::Request<GetEventRequest> {
    let mut r = tonic::Request::new(GetEventRequest {
        event_id: id.to_owned(),
        ..Default::default()
    });
    r.set_timeout(Duration::from_secs(5));
    r
}

async fn suspect(fp: &mut FingerprintServiceClient<Channel>, id: &str) -> (Option<bool>, String) {
    let r = fp.get_event(event(id)).await.unwrap();
    let cache = cache_of(&r);
    (r.into_inner().event.unwrap().suspect, cache)
}

async fn set_suspect(fp: &mut FingerprintServiceClient<Channel>, id: &str, value: bool) {
    fp.update_event(UpdateEventRequest {
        event_id: id.to_owned(),
        suspect: Some(value),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Replicas need a moment after start-up to hear their first heartbeat (until then
/// they answer without their memory, which is correct, only slower).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn a_write_through_one_replica_is_read_through_the_others() {
    let redis = Redis::start();
    let sandbox = sandbox().await;
    let a = Replica::start(&sandbox, &redis.url(), &[]).await;
    let b = Replica::start(&sandbox, &redis.url(), &[]).await;
    let c = Replica::start(&sandbox, &redis.url(), &[]).await;
    settle().await;
    let (mut fa, mut fb, mut fc) = (a.fp(), b.fp(), c.fp());

    // A miss on B fills the shared level: C and A hit it without an upstream call.
    let before = sandbox.control.served();
    assert_eq!(suspect(&mut fb, "raw-1").await.1, "miss");
    assert_eq!(suspect(&mut fc, "raw-1").await.1, "hit");
    assert_eq!(suspect(&mut fa, "raw-1").await.1, "hit");
    assert_eq!(sandbox.control.served() - before, 1, "one upstream call");

    // Read on B, write on A, read on B and C: both see the write (once its
    // invalidation arrived: milliseconds, see below; never past the lease).
    let (was, _) = suspect(&mut fb, "raw-1").await;
    let now = Some(!was.unwrap_or(false));
    set_suspect(&mut fa, "raw-1", !was.unwrap_or(false)).await;
    let ok_at = Instant::now();
    for fp in [&mut fb, &mut fc] {
        while suspect(fp, "raw-1").await.0 != now {
            assert!(
                ok_at.elapsed() < Duration::from_secs(1),
                "not seen within the lease"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // A fresh reader (no answer in memory) sees it at once: the write dropped it from L2
    // before answering.
    let d = Replica::start(&sandbox, &redis.url(), &[]).await;
    settle().await;
    assert_eq!(suspect(&mut d.fp(), "raw-1").await.0, now);
    d.stop().await;

    // The delay, over 200 writes: from the write's OK until B no longer answers from
    // its memory with the pre-write answer. B reads before each write, so its memory
    // holds the answer the write makes stale.
    let mut delays = Vec::new();
    let mut value = !was.unwrap_or(false);
    for _ in 0..200 {
        assert_eq!(suspect(&mut fb, "raw-1").await.0, Some(value));
        value = !value;
        set_suspect(&mut fa, "raw-1", value).await;
        let ok_at = Instant::now();
        loop {
            let (seen, _) = suspect(&mut fb, "raw-1").await;
            if seen == Some(value) {
                delays.push(ok_at.elapsed());
                break;
            }
            assert!(
                ok_at.elapsed() < Duration::from_millis(1_500),
                "B served the pre-write answer past the lease"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    delays.sort();
    let p50 = delays[delays.len() / 2];
    let p99 = delays[delays.len() * 99 / 100];
    let stale_reads = delays
        .iter()
        .filter(|d| **d > Duration::from_millis(1))
        .count();
    eprintln!(
        "invalidation across replicas, 200 writes: p50 {p50:?}, p99 {p99:?}, max {:?}; {stale_reads} writes were followed by a stale read",
        delays[delays.len() - 1]
    );
    for r in [a, b, c] {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn identical_misses_on_every_replica_make_one_upstream_call() {
    let redis = Redis::start();
    let sandbox = sandbox().await;
    // A generous Redis timeout: this is about coalescing, and on a loaded machine a
    // lookup slower than the default 50 ms would (rightly) go on without Redis.
    let slow = [("GATEWAY_REDIS_TIMEOUT", "2s")];
    let replicas = [
        Replica::start(&sandbox, &redis.url(), &slow).await,
        Replica::start(&sandbox, &redis.url(), &slow).await,
        Replica::start(&sandbox, &redis.url(), &slow).await,
    ];
    settle().await;
    sandbox.control.set_delay(Duration::from_millis(300));
    let before = sandbox.control.served();
    let calls: Vec<_> = (0..96)
        .map(|i| {
            let mut fp = replicas[i % 3].fp();
            tokio::spawn(async move { fp.get_event(event("hot-key")).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        sandbox.control.served() - before,
        1,
        "3 x 32 identical misses: one upstream call"
    );
    for r in replicas {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn a_call_waiting_on_another_replicas_fetch_keeps_time_for_its_own() {
    let redis = Redis::start();
    let sandbox = sandbox().await;
    let slow_redis = [("GATEWAY_REDIS_TIMEOUT", "2s")];
    let a = Replica::start(&sandbox, &redis.url(), &slow_redis).await;
    let b = Replica::start(&sandbox, &redis.url(), &slow_redis).await;
    settle().await;
    // A's fetch takes 6 s (it holds the key's lock all along); the next one, B's own,
    // takes 100 ms.
    sandbox
        .control
        .faults
        .set(
            fingerprint_gateway::sandbox::faults::parse_rules(
                r#"[{"path": "/v4/events/held-key", "latency_ms": 6000, "times": 1},
                    {"path": "/v4/events/held-key", "latency_ms": 100, "times": 1}]"#,
            )
            .unwrap(),
        )
        .unwrap();
    let mut fa = a.fp();
    let first = tokio::spawn(async move {
        let mut r = event("held-key");
        r.set_timeout(Duration::from_secs(20));
        fa.get_event(r).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // B finds the lock held: it may wait for A's fill, but not so long that its own
    // fetch no longer fits its deadline.
    let mut r = event("held-key");
    r.set_timeout(Duration::from_secs(3));
    let answer = b.fp().get_event(r).await;
    assert!(
        answer.is_ok(),
        "B waited out its deadline on A's lock: {answer:?}"
    );
    first.await.unwrap().unwrap();
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn redis_dying_and_returning_mid_load_fails_no_call() {
    let mut redis = Redis::start();
    let sandbox = sandbox().await;
    let replicas = Arc::new([
        Replica::start(&sandbox, &redis.url(), &[]).await,
        Replica::start(&sandbox, &redis.url(), &[]).await,
        Replica::start(&sandbox, &redis.url(), &[]).await,
    ]);
    settle().await;
    let running = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..12)
        .map(|w| {
            let mut fp = replicas[w % 3].fp();
            let running = running.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                let mut i = 0u32;
                while running.load(Ordering::Relaxed) {
                    i += 1;
                    let id = format!("load-{}", i % 50);
                    let answer = if i.is_multiple_of(10) {
                        fp.update_event(UpdateEventRequest {
                            event_id: id,
                            suspect: Some(i.is_multiple_of(20)),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ())
                    } else {
                        fp.get_event(event(&id)).await.map(|_| ())
                    };
                    match answer {
                        Ok(()) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    running.store(false, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        assert!(
            failed.is_empty(),
            "calls failed because of Redis: {failed:?}"
        );
        total += ok;
    }
    eprintln!("{total} calls through a Redis kill and restart, none failed");
    assert!(total > 100, "the load ran: {total}");
    // Back on Redis: a miss on one replica is a hit on another again.
    let mut fa = replicas[0].fp();
    let mut fb = replicas[1].fp();
    settle().await;
    let _ = suspect(&mut fa, "after-restart").await;
    let before = sandbox.control.served();
    assert_eq!(suspect(&mut fb, "after-restart").await.1, "hit");
    assert_eq!(sandbox.control.served(), before);
    if let Ok(replicas) = Arc::try_unwrap(replicas) {
        for r in replicas {
            r.stop().await;
        }
    }
}

/// A TCP relay to `target` that can be paused: bytes stop flowing both ways (the
/// connections stay open), as when a network partition or a stopped peer holds them.
struct Relay {
    addr: SocketAddr,
    paused: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let paused = Arc::new(AtomicBool::new(false));
        let p = paused.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, p.clone()));
                tokio::spawn(pipe(ro, wi, p.clone()));
            }
        });
        Self { addr, paused }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    paused: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while paused.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn a_replica_that_cannot_hear_invalidations_stops_trusting_its_memory_within_the_lease() {
    let redis = Redis::start();
    let sandbox = sandbox().await;
    let relay = Relay::start(redis.addr).await;
    let a = Replica::start(&sandbox, &redis.url(), &[]).await;
    let b = Replica::start(&sandbox, &format!("redis://{}", relay.addr), &[]).await;
    settle().await;
    let (mut fa, mut fb) = (a.fp(), b.fp());
    set_suspect(&mut fa, "partitioned", false).await;
    // B holds the answer in memory.
    assert_eq!(suspect(&mut fb, "partitioned").await.0, Some(false));
    assert_eq!(suspect(&mut fb, "partitioned").await.1, "hit");
    // B's Redis connections stall; A writes.
    relay.paused.store(true, Ordering::Relaxed);
    set_suspect(&mut fa, "partitioned", true).await;
    let ok_at = Instant::now();
    // Past the lease (1 s) B must not answer from its memory.
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let mut last = Duration::ZERO;
    for _ in 0..10 {
        let (seen, cache) = suspect(&mut fb, "partitioned").await;
        assert_eq!(
            seen,
            Some(true),
            "B served the pre-write answer ({cache}) past the lease"
        );
        last = ok_at.elapsed();
    }
    eprintln!("partitioned replica: post-write answers from {last:?} after the write");
    relay.paused.store(false, Ordering::Relaxed);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn the_quota_holds_across_replicas() {
    let redis = Redis::start();
    let sandbox = sandbox().await;
    let quota = [("FINGERPRINT_RATE_LIMIT", "10/s")];
    let replicas = [
        Replica::start(&sandbox, &redis.url(), &quota).await,
        Replica::start(&sandbox, &redis.url(), &quota).await,
        Replica::start(&sandbox, &redis.url(), &quota).await,
    ];
    settle().await;
    let before = sandbox.control.served();
    let started = Instant::now();
    let calls: Vec<_> = (0..90)
        .map(|i| {
            let mut fp = replicas[i % 3].fp();
            tokio::spawn(async move {
                let mut r = event(&format!("quota-{i}"));
                r.set_timeout(Duration::from_secs(2));
                fp.get_event(r).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            // Refused before sending, or (on a loaded machine) a turn at the very end
            // of the deadline whose attempt did not fit in what was left: the
            // client's own timer ended first, or the gateway's.
            Err(e) if e.code() == tonic::Code::ResourceExhausted => refused += 1,
            Err(e) if e.code() == tonic::Code::Cancelled && e.message() == "Timeout expired" => {
                refused += 1;
            }
            Err(e) if e.code() == tonic::Code::DeadlineExceeded => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    let elapsed = started.elapsed();
    let sent = sandbox.control.served() - before;
    eprintln!("3 replicas, 10/s shared: {ok} OK, {refused} refused, {sent} sent in {elapsed:?}");
    // 10 per second together (not 30): at most one per 100 ms, plus the first.
    let allowed = (elapsed.as_secs_f64() * 10.0).ceil() as u64 + 1;
    assert!(sent <= allowed, "{sent} upstream calls in {elapsed:?}");
    assert!(
        refused > 0,
        "the rest waited within their deadline, then were refused"
    );
    for r in replicas {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn shared_values_are_sealed_and_a_tampered_one_is_refused() {
    let redis = Redis::start();
    let sandbox = sandbox().await;
    let key = [(
        "GATEWAY_REDIS_ENCRYPTION_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    )];
    let a = Replica::start(&sandbox, &redis.url(), &key).await;
    let b = Replica::start(&sandbox, &redis.url(), &key).await;
    settle().await;
    let (mut fa, mut fb) = (a.fp(), b.fp());
    let first = fa.get_event(event("sealed-1")).await.unwrap().into_inner();
    let ip = first.event.unwrap().ip_address.unwrap();
    // What Redis holds: no event id, no IP address in the clear.
    let redis::Value::Array(keys) = redis.cmd(&[b"KEYS", b"*:e:*"]).await else {
        panic!("KEYS")
    };
    assert_eq!(keys.len(), 1, "{keys:?}");
    let redis::Value::BulkString(name) = &keys[0] else {
        panic!("key")
    };
    let redis::Value::BulkString(value) = redis.cmd(&[b"GET", name]).await else {
        panic!("GET")
    };
    let text = String::from_utf8_lossy(&value);
    assert!(
        !text.contains("sealed-1") && !text.contains(&ip),
        "stored in the clear"
    );
    // Round trip: B answers from it without an upstream call.
    let before = sandbox.control.served();
    assert_eq!(suspect(&mut fb, "sealed-1").await.1, "hit");
    assert_eq!(sandbox.control.served(), before);
    // Tampered with (one byte flipped): refused as if absent; the answer is fetched.
    let mut forged = value.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    redis.cmd(&[b"SET", name, &forged, b"PX", b"60000"]).await;
    let c = Replica::start(&sandbox, &redis.url(), &key).await;
    settle().await;
    let r = c.fp().get_event(event("sealed-1")).await.unwrap();
    assert_eq!(cache_of(&r), "miss", "a forged value is not served");
    assert_eq!(r.into_inner().event.unwrap().ip_address.unwrap(), ip);
    for r in [a, b, c] {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_at_start_up_the_gateway_serves_from_the_upstream_and_young_memory() {
    // No redis-server needed: nothing listens on this port.
    let sandbox = sandbox().await;
    let nowhere = free_port();
    let a = Replica::start(&sandbox, &format!("redis://{nowhere}"), &[]).await;
    let mut fa = a.fp();
    assert_eq!(suspect(&mut fa, "no-redis").await.1, "miss");
    // Younger than the lease: a write it could not hear came after it was fetched.
    assert_eq!(suspect(&mut fa, "no-redis").await.1, "hit");
    // Older than the lease, while no invalidation can be heard: fetched again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let before = sandbox.control.served();
    assert_eq!(suspect(&mut fa, "no-redis").await.1, "miss");
    assert_eq!(sandbox.control.served() - before, 1);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn the_dashboard_queries_only_metrics_the_gateway_serves() {
    let redis = Redis::start();
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/fingerprint-gateway.json"
    ))
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in parsed["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("fpgw_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");

    // Known traffic: a miss, a hit, a call to the other replica, a write.
    let sandbox = sandbox().await;
    let metrics = free_port();
    let a = Replica::start(
        &sandbox,
        &redis.url(),
        &[("GATEWAY_METRICS_LISTEN", &metrics.to_string())],
    )
    .await;
    let b = Replica::start(&sandbox, &redis.url(), &[]).await;
    settle().await;
    let mut fa = a.fp();
    suspect(&mut fa, "dash-1").await;
    suspect(&mut fa, "dash-1").await;
    suspect(&mut b.fp(), "dash-2").await;
    set_suspect(&mut b.fp(), "dash-1", true).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let body = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in &queried {
        let served = body
            .lines()
            .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")));
        assert!(
            served,
            "the dashboard queries {name}, which /metrics does not serve:\n{body}"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// A process of the binary, killed when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)], port: SocketAddr) -> Process {
    let mut child = common::process::gateway(args, env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(&mut child, port, "gateway", Duration::from_secs(20));
    Process(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn three_processes_on_one_redis_read_their_writes_under_load() {
    let redis = Redis::start();
    // One upstream (the sandbox, as a process of its own) for three gateway processes.
    let upstream = free_port();
    let _sandbox = spawn(
        &["sandbox", "--listen", &upstream.to_string()],
        &[],
        upstream,
    );
    let creds = Credentials::default();
    let base = format!("http://{upstream}");
    let redis_url = redis.url();
    let mut gateways = Vec::new();
    let mut channels = Vec::new();
    for _ in 0..3 {
        let listen = free_port();
        let listen_text = listen.to_string();
        gateways.push(spawn(
            &[],
            &[
                ("GATEWAY_LISTEN", &listen_text),
                ("GATEWAY_REDIS_URL", &redis_url),
                ("FINGERPRINT_API_BASE_URL", &base),
                ("FINGERPRINT_SECRET_API_KEY", &creds.fingerprint_secret),
                ("STYTCH_API_BASE_URL", &base),
                ("STYTCH_PROJECT_ID", &creds.stytch_project_id),
                ("STYTCH_SECRET", &creds.stytch_secret),
            ],
            listen,
        ));
        channels.push(
            Channel::from_shared(format!("http://{listen}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    settle().await;
    let mut writer = FingerprintServiceClient::new(channels[0].clone());
    set_suspect(&mut writer, "rw-1", false).await;

    // Readers on B and C, as fast as they go; each read keeps when it started and what
    // it saw.
    let running = Arc::new(AtomicBool::new(true));
    let epoch = Instant::now();
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let mut fp = FingerprintServiceClient::new(channels[1 + i % 2].clone());
            let running = running.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while running.load(Ordering::Relaxed) {
                    let started = epoch.elapsed();
                    let (value, _) = suspect(&mut fp, "rw-1").await;
                    seen.push((started, value.unwrap_or(false)));
                }
                seen
            })
        })
        .collect();
    // 50 writes through A; each one's OK time.
    let mut writes = Vec::new();
    let mut value = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        value = !value;
        let began = epoch.elapsed();
        set_suspect(&mut writer, "rw-1", value).await;
        writes.push((began, epoch.elapsed(), value));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.store(false, Ordering::Relaxed);
    let mut reads = Vec::new();
    for r in readers {
        reads.extend(r.await.unwrap());
    }
    // A read that started after write k's OK (and before write k+1 began) must see
    // write k's value, once past the bound; before it, a stale answer is counted.
    let bound = Duration::from_millis(50);
    let (mut checked, mut stale_within, mut stale_beyond) = (0, 0, 0);
    let mut worst = Duration::ZERO;
    for (k, (_, ok_at, value)) in writes.iter().enumerate() {
        let next_began = writes.get(k + 1).map_or(Duration::MAX, |w| w.0);
        for (started, seen) in reads.iter().filter(|(s, _)| s > ok_at && *s < next_began) {
            checked += 1;
            if seen != value {
                let late = *started - *ok_at;
                worst = worst.max(late);
                if late > bound {
                    stale_beyond += 1;
                } else {
                    stale_within += 1;
                }
            }
        }
    }
    eprintln!(
        "3 processes, 50 writes on A, {checked} reads on B and C started after a write's OK: \
         {stale_within} stale within {bound:?} of the OK, {stale_beyond} beyond; latest stale read started {worst:?} after the OK"
    );
    assert!(checked > 200, "the readers ran: {checked}");
    assert_eq!(stale_beyond, 0, "pre-write answers past the bound");
    drop(gateways);
}

/// A `redis-server` that speaks only TLS, with a certificate for 127.0.0.1 signed by a
/// private CA; the CA's PEM is in `ca_file`.
struct TlsRedis {
    child: Child,
    addr: SocketAddr,
    ca_file: std::path::PathBuf,
    _dir: std::path::PathBuf,
}

impl TlsRedis {
    fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
        // Only to learn whether redis-server is installed (and say so).
        drop(Redis::start());
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "private Redis CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "fpgw-redis-tls-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca_file = file("ca.pem", &ca_pem);
        let cert_file = file("redis.pem", &cert.pem());
        let key_file = file("redis.key", &key.serialize_pem());
        let addr = free_port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &addr.port().to_string()])
            .args(["--tls-cert-file", cert_file.to_str().unwrap()])
            .args(["--tls-key-file", key_file.to_str().unwrap()])
            .args(["--tls-ca-cert-file", ca_file.to_str().unwrap()])
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_listener(
            &mut child,
            addr,
            "redis-server (TLS)",
            Duration::from_secs(10),
        );
        Self {
            child,
            addr,
            ca_file,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("rediss://{}", self.addr)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (.ci/install: Debian redis-server): cargo test -- --include-ignored"]
async fn a_tls_redis_signed_by_a_private_ca_is_shared_and_verified() {
    let redis = TlsRedis::start();
    let sandbox = sandbox().await;
    let ca = redis.ca_file.to_str().unwrap().to_owned();
    let a = Replica::start(&sandbox, &redis.url(), &[("GATEWAY_REDIS_CA_FILE", &ca)]).await;
    let b = Replica::start(&sandbox, &redis.url(), &[("GATEWAY_REDIS_CA_FILE", &ca)]).await;
    // Trusting only the public web roots, this one must refuse the server's certificate
    // and go on without Redis.
    let c = Replica::start(&sandbox, &redis.url(), &[]).await;
    settle().await;
    let before = sandbox.control.served();
    assert_eq!(suspect(&mut a.fp(), "tls-1").await.1, "miss");
    assert_eq!(
        suspect(&mut b.fp(), "tls-1").await.1,
        "hit",
        "B reads A's fill over TLS"
    );
    assert_eq!(sandbox.control.served() - before, 1, "one upstream call");
    assert_eq!(
        suspect(&mut c.fp(), "tls-1").await.1,
        "miss",
        "C cannot read Redis"
    );
    assert_eq!(sandbox.control.served() - before, 2);
    for r in [a, b, c] {
        r.stop().await;
    }
}
