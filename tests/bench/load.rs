//! `kneo-load`: a load generator for the kneo benchmarks (docs/performance.md).
//!
//! Drives sync or async run creation against a running server on loopback with a fixed number
//! of concurrent clients for a fixed time, while one more client samples `/readyz` latency, and
//! prints throughput and latency percentiles as one JSON object.
//!
//! ```text
//! kneo-load --url http://127.0.0.1:8000 --key opskey123 --mode sync --concurrency 32 --seconds 10
//! kneo-load --url … --mode async --runs 20000          # queue end to end: accepted → all terminal
//! kneo-load --url … --mode readyz --seconds 10         # only the /readyz sampler (e.g. a hung store)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Options {
    url: String,
    key: String,
    mode: String,
    concurrency: usize,
    seconds: f64,
    runs: u64,
    spec_path: String,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        url: "http://127.0.0.1:8000".into(),
        key: String::new(),
        mode: "sync".into(),
        concurrency: 32,
        seconds: 10.0,
        runs: 10_000,
        spec_path: "specs/hello.yaml".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => options.url = value()?,
            "--key" => options.key = value()?,
            "--mode" => options.mode = value()?,
            "--concurrency" => options.concurrency = value()?.parse().map_err(|_| "--concurrency takes a number")?,
            "--seconds" => options.seconds = value()?.parse().map_err(|_| "--seconds takes a number")?,
            "--runs" => options.runs = value()?.parse().map_err(|_| "--runs takes a number")?,
            "--spec-path" => options.spec_path = value()?,
            "--help" | "-h" => {
                return Err("usage: kneo-load --url URL [--key KEY] [--mode sync|async|readyz] [--concurrency N] [--seconds S] [--runs N] [--spec-path P]".into())
            }
            other => return Err(format!("unknown option {other}; see --help")),
        }
    }
    if !["sync", "async", "readyz"].contains(&options.mode.as_str()) {
        return Err(format!(
            "--mode must be sync, async or readyz, not {}",
            options.mode
        ));
    }
    Ok(options)
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    json!({
        "count": samples.len(),
        "p50_ms": percentile(&samples, 0.50),
        "p99_ms": percentile(&samples, 0.99),
        "max_ms": samples.last().copied().unwrap_or(0.0),
    })
}

/// Samples `/readyz` every 20 ms until told to stop: the latencies, and how many answers had
/// each status.
async fn sample_readiness(
    client: reqwest::Client,
    url: String,
    stop: Arc<AtomicBool>,
) -> (Vec<f64>, std::collections::BTreeMap<u16, u64>) {
    let mut samples = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await {
            *statuses.entry(response.status().as_u16()).or_insert(0) += 1;
            let _ = response.bytes().await;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (samples, statuses)
}

#[tokio::main]
async fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("kneo-load: {message}");
            std::process::exit(2);
        }
    };
    let client = match reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(options.concurrency + 4)
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("kneo-load: cannot build the HTTP client: {error}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let readiness = tokio::spawn(sample_readiness(
        client.clone(),
        options.url.clone(),
        stop.clone(),
    ));
    let result = match options.mode.as_str() {
        "sync" => run_sync(&client, &options).await,
        "async" => run_async(&client, &options).await,
        _ => {
            tokio::time::sleep(Duration::from_secs_f64(options.seconds)).await;
            json!({"mode": "readyz", "seconds": options.seconds})
        }
    };
    stop.store(true, Ordering::Relaxed);
    let (readyz, statuses) = readiness.await.unwrap_or_default();
    let mut report = result;
    report["readyz_latency"] = summary(readyz);
    report["readyz_statuses"] = json!(statuses);
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
}

fn create_body(options: &Options, async_mode: bool, index: u64) -> String {
    json!({"spec_path": options.spec_path, "input": format!("load {index}"), "async_mode": async_mode}).to_string()
}

/// Closed-loop sync creates for `seconds`.
async fn run_sync(client: &reqwest::Client, options: &Options) -> Value {
    let deadline = Instant::now() + Duration::from_secs_f64(options.seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.concurrency {
        let (client, counter, errors) = (client.clone(), counter.clone(), errors.clone());
        let url = format!("{}/v1/runs", options.url);
        let key = options.key.clone();
        let bodies: Vec<String> = (0..1).map(|i| create_body(options, false, i)).collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .body(bodies[0].clone())
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().as_u16() == 200 => {
                        let _ = response.bytes().await;
                        counter.fetch_add(1, Ordering::Relaxed);
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let completed = counter.load(Ordering::Relaxed);
    json!({
        "mode": "sync",
        "concurrency": options.concurrency,
        "seconds": elapsed,
        "runs": completed,
        "errors": errors.load(Ordering::Relaxed),
        "runs_per_second": completed as f64 / elapsed,
        "latency": summary(latencies),
    })
}

/// Submits `runs` async creates, then waits until the queue has drained them all; reports the
/// end-to-end rate (first submit to last terminal) and checks none was lost.
async fn run_async(client: &reqwest::Client, options: &Options) -> Value {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..options.concurrency {
        let (client, next, accepted, errors) = (
            client.clone(),
            next.clone(),
            accepted.clone(),
            errors.clone(),
        );
        let url = format!("{}/v1/runs", options.url);
        let key = options.key.clone();
        let total = options.runs;
        let body = create_body(options, true, 0);
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let response = client
                    .post(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().as_u16() == 202 => {
                        let _ = response.bytes().await;
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let submitted_after = started.elapsed().as_secs_f64();
    // Drained when the queue reports nothing queued or running.
    loop {
        let metrics = client.get(format!("{}/metrics", options.url)).send().await;
        let text = match metrics {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let gauge = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(f64::MAX)
        };
        if gauge("kneo_runs_queued") == 0.0 && gauge("kneo_runs_running") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    json!({
        "mode": "async",
        "concurrency": options.concurrency,
        "accepted": accepted,
        "errors": errors.load(Ordering::Relaxed),
        "submit_seconds": submitted_after,
        "drain_seconds": elapsed,
        "runs_per_second_end_to_end": accepted as f64 / elapsed,
    })
}
