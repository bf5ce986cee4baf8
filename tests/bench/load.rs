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
//!
//! An async load counts its own runs: it is drained when every run it submitted is terminal,
//! read from those runs, so runs other clients left behind do not change its figure; it reports
//! `not_terminal` (and exits 1) if some of its runs were still going after `--drain-timeout`.

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
    /// Seconds an async load waits for its runs to end before it reports them not terminal.
    drain_timeout: f64,
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
        drain_timeout: 300.0,
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
            "--drain-timeout" => options.drain_timeout = value()?.parse().map_err(|_| "--drain-timeout takes a number")?,
            "--help" | "-h" => {
                return Err("usage: kneo-load --url URL [--key KEY] [--mode sync|async|readyz] [--concurrency N] [--seconds S] [--runs N] [--spec-path P] [--drain-timeout S]".into())
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
        .pool_idle_timeout(Duration::from_secs(4))
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
    if report["not_terminal"].as_u64().is_some_and(|n| n > 0) {
        std::process::exit(1);
    }
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

/// Submits `runs` async creates, then waits until every run this load submitted is terminal
/// (read from those runs, not from the service-wide queue gauges, which also count other
/// clients' runs); reports the end-to-end rate (first submit to last terminal), and how many of
/// its runs were still not terminal if it gave up after `--drain-timeout` seconds.
async fn run_async(client: &reqwest::Client, options: &Options) -> Value {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..options.concurrency {
        let (client, next, errors) = (client.clone(), next.clone(), errors.clone());
        let url = format!("{}/v1/runs", options.url);
        let key = options.key.clone();
        let total = options.runs;
        let body = create_body(options, true, 0);
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
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
                        let answer: Value = response.json().await.unwrap_or_default();
                        match answer["run_id"].as_str() {
                            Some(id) => accepted.push(id.to_string()),
                            None => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(task.await.unwrap_or_default());
    }
    let submitted_after = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs_f64(options.drain_timeout);
    let not_terminal = drain(client, options, &accepted, deadline).await;
    let elapsed = started.elapsed().as_secs_f64();
    let count = accepted.len();
    json!({
        "mode": "async",
        "concurrency": options.concurrency,
        "accepted": count,
        "errors": errors.load(Ordering::Relaxed),
        "submit_seconds": submitted_after,
        "drain_seconds": elapsed,
        "not_terminal": not_terminal,
        "runs_per_second_end_to_end": if not_terminal == 0 { count as f64 / elapsed } else { 0.0 },
    })
}

/// Whether `GET /v1/runs/{id}` shows the run terminal (an unreadable answer counts as not).
async fn is_terminal(client: &reqwest::Client, options: &Options, run_id: &str) -> bool {
    let response = client
        .get(format!("{}/v1/runs/{run_id}", options.url))
        .header("authorization", format!("Bearer {}", options.key))
        .send()
        .await;
    let Ok(response) = response else {
        return false;
    };
    let run: Value = response.json().await.unwrap_or_default();
    matches!(
        run["status"].as_str(),
        Some("completed" | "failed" | "cancelled" | "timed_out" | "expired")
    )
}

/// Waits until every run in `runs` is terminal or `deadline` passes; returns how many are not.
///
/// The queue is first in, first out, so the load polls its last run until it ends, then checks
/// all the others once (in parallel), and polls again only those still going.
async fn drain(
    client: &reqwest::Client,
    options: &Options,
    runs: &[String],
    deadline: Instant,
) -> usize {
    use futures_util::StreamExt;
    let Some(last) = runs.last() else {
        return 0;
    };
    while !is_terminal(client, options, last).await {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut pending: Vec<String> = runs.to_vec();
    loop {
        let checked: Vec<(String, bool)> = futures_util::stream::iter(pending)
            .map(|id| async move {
                let done = is_terminal(client, options, &id).await;
                (id, done)
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        pending = checked
            .into_iter()
            .filter(|(_, done)| !done)
            .map(|(id, _)| id)
            .collect();
        if pending.is_empty() || Instant::now() > deadline {
            return pending.len();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
