//! Load clients the benchmark needs besides h2load.
//!
//! * `load direct URL CONCURRENCY WARMUP_MS DURATION_MS [LOG]`: plain reqwest GETs of
//!   one URL, what a service does without the gateway, CONCURRENCY at a time without
//!   pause. As h2load's `--warm-up-time` and `-D`: only the calls started in the
//!   DURATION_MS after the first WARMUP_MS are measured. Prints req/s, mean, p50, p99,
//!   and appends each measured call's latency in µs, one per line, to LOG when given.
//! * `load fill ADDR COUNT CONCURRENCY`: GetEvent for COUNT distinct event ids through
//!   the gateway at ADDR (fills its cache).
//! * `load sandbox URL COUNT CONCURRENCY`: COUNT distinct searches and event reads
//!   against `fingerprint-gateway sandbox` at URL.
//! * `load unknown ADDR COUNT`: COUNT calls to made-up gRPC methods.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fingerprint_gateway::proto::v1::{
    GetEventRequest, fingerprint_service_client::FingerprintServiceClient,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or(0);
    match arg(0).as_str() {
        "direct" => {
            let ms = |i: usize| Duration::from_millis(num(i));
            direct(&arg(1), num(2), ms(3), ms(4), args.get(5)).await
        }
        "fill" => fill(&arg(1), num(2), num(3)).await,
        "sandbox" => sandbox(&arg(1), num(2), num(3)).await,
        "unknown" => unknown(&arg(1), num(2)).await,
        other => Err(format!("unknown mode {other:?}").into()),
    }
}

/// Runs `count` jobs over `concurrency` workers; job `i` is `job(i)`.
async fn spread<F, Fut>(count: u64, concurrency: u64, job: F) -> Result<Vec<Duration>>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let job = Arc::new(job);
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let job = job.clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(samples);
                }
                let started = Instant::now();
                job(i).await?;
                samples.push(started.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    Ok(all)
}

async fn direct(
    url: &str,
    concurrency: u64,
    warm_up: Duration,
    duration: Duration,
    log: Option<&String>,
) -> Result<()> {
    let client = reqwest::Client::builder().build()?;
    let url = Arc::new(url.to_owned());
    let started = Instant::now();
    let (measure_from, stop_at) = (started + warm_up, started + warm_up + duration);
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let at = Instant::now();
                if at >= stop_at {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(samples);
                }
                let body = client.get(url.as_str()).send().await?.error_for_status()?;
                body.bytes().await?;
                // Calls started during the warm-up open the connections and let the
                // workers fall out of step; they are not measured.
                if at >= measure_from {
                    samples.push(at.elapsed());
                }
            }
        }));
    }
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await??);
    }
    if let Some(log) = log {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?,
        );
        for d in &samples {
            writeln!(out, "{}", d.as_micros())?;
        }
        out.flush()?;
    }
    let s = fingerprint_gateway_bench::stats(samples, duration);
    println!(
        "{:.0} req/s mean {:?} p50 {:?} p99 {:?}",
        s.rps, s.mean, s.p50, s.p99
    );
    Ok(())
}

async fn fill(addr: &str, count: u64, concurrency: u64) -> Result<()> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let started = Instant::now();
    spread(count, concurrency, move |i| {
        let mut client = FingerprintServiceClient::new(channel.clone());
        async move {
            client
                .get_event(GetEventRequest {
                    event_id: format!("17{:011}.fill{i}", i),
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    println!("filled {count} in {:?}", started.elapsed());
    Ok(())
}

async fn sandbox(url: &str, count: u64, concurrency: u64) -> Result<()> {
    let client = reqwest::Client::builder().build()?;
    let base = Arc::new(url.trim_end_matches('/').to_owned());
    let started = Instant::now();
    spread(count, concurrency, move |i| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let url = if i % 2 == 0 {
                format!("{base}/v4/events?visitor_id=visitor{i:016}&limit=5")
            } else {
                format!("{base}/v4/events/17{i:011}.sbx")
            };
            client
                .get(url)
                .bearer_auth("sandbox-fingerprint-secret-key")
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            Ok(())
        }
    })
    .await?;
    println!("sandbox served {count} in {:?}", started.elapsed());
    Ok(())
}

async fn unknown(addr: &str, count: u64) -> Result<()> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    for i in 0..count {
        grpc.ready().await?;
        let path = http::uri::PathAndQuery::try_from(format!("/made.up.Service{i}/Method{i}"))?;
        let _ = grpc
            .unary::<_, (), _>(
                tonic::Request::new(()),
                path,
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await;
    }
    println!("called {count} made-up methods");
    Ok(())
}
