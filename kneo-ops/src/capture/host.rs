//! Host context: `uname -a`, the OS release, CPU and memory, free space of the state directory,
//! and the Postgres server version (via `psql`, when a DSN is given).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::items::{Collected, Content};
use super::process::{CommandError, find_on_path, run_command};
use crate::redaction::percent_decode;
use kneo_triage::manifest::ItemStatus;

fn status_of(error: &CommandError) -> ItemStatus {
    match error {
        CommandError::Timeout { .. } => ItemStatus::Timeout,
        _ => ItemStatus::Error,
    }
}

pub(crate) async fn uname(bound: Duration) -> Collected {
    let (path, source) = ("host/uname.txt", "command: uname -a");
    let started = Instant::now();
    let Some(program) = find_on_path("uname") else {
        return Collected::failed(
            path,
            source,
            ItemStatus::Error,
            "uname is not on PATH",
            started.elapsed(),
        );
    };
    match run_command(&program, &[OsStr::new("-a")], &[], bound).await {
        Ok(output) if output.exit_code == Some(0) => Collected::ok(
            path,
            source,
            Content::Text(output.stdout),
            started.elapsed(),
        ),
        Ok(output) => Collected::failed(
            path,
            source,
            ItemStatus::Error,
            format!(
                "uname ended with {}: {}",
                output.exit_description(),
                output.stderr.trim()
            ),
            started.elapsed(),
        ),
        Err(error) => Collected::failed(
            path,
            source,
            status_of(&error),
            error.to_string(),
            started.elapsed(),
        ),
    }
}

pub(crate) async fn os_release() -> Collected {
    let started = Instant::now();
    for candidate in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(text) = tokio::fs::read_to_string(candidate).await {
            return Collected::ok(
                "host/os-release.txt",
                format!("file: {candidate}"),
                Content::Text(text),
                started.elapsed(),
            );
        }
    }
    Collected::failed(
        "host/os-release.txt",
        "file: /etc/os-release",
        ItemStatus::Error,
        "neither /etc/os-release nor /usr/lib/os-release is readable",
        started.elapsed(),
    )
}

/// CPU count and model, memory and swap, load and uptime, from `/proc`.
pub(crate) async fn resources() -> Collected {
    let started = Instant::now();
    let read = |path: &'static str| async move { tokio::fs::read_to_string(path).await.ok() };
    let (cpuinfo, meminfo, loadavg, uptime) = tokio::join!(
        read("/proc/cpuinfo"),
        read("/proc/meminfo"),
        read("/proc/loadavg"),
        read("/proc/uptime")
    );
    let cpu_count = std::thread::available_parallelism().map(|n| n.get()).ok();
    let cpu_model = cpuinfo.as_deref().and_then(|text| {
        text.lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, model)| model.trim().to_string())
    });
    let processors = cpuinfo.as_deref().map(|text| {
        text.lines()
            .filter(|line| line.starts_with("processor"))
            .count()
    });
    let memory_field = |name: &str| {
        meminfo.as_deref().and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(&format!("{name}:")))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
    };
    let document = json!({
        "cpu_count": cpu_count,
        "processors_in_cpuinfo": processors,
        "cpu_model": cpu_model,
        "memory_kib": {
            "total": memory_field("MemTotal"),
            "available": memory_field("MemAvailable"),
            "swap_total": memory_field("SwapTotal"),
            "swap_free": memory_field("SwapFree"),
        },
        "load_average": loadavg.as_deref().map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        "uptime_seconds": uptime.as_deref().and_then(|text| text.split_whitespace().next()).and_then(|s| s.parse::<f64>().ok()),
    });
    let (path, source) = (
        "host/resources.json",
        "files: /proc/cpuinfo, /proc/meminfo, /proc/loadavg, /proc/uptime",
    );
    if meminfo.is_none() && cpu_count.is_none() {
        return Collected::failed(
            path,
            source,
            ItemStatus::Error,
            "/proc is not readable and the CPU count is unknown",
            started.elapsed(),
        );
    }
    Collected::ok(path, source, Content::Json(document), started.elapsed())
}

/// Free space of the filesystem holding the state directory (`statvfs`).
pub(crate) async fn disk(state_dir: &Path, bound: Duration) -> Collected {
    let started = Instant::now();
    let source = format!("statvfs: {}", state_dir.display());
    let path = "host/disk.json";
    let directory = state_dir.to_path_buf();
    // A hung network filesystem blocks statvfs; the blocking thread is abandoned at the bound.
    let task = tokio::task::spawn_blocking(move || statvfs(&directory));
    match tokio::time::timeout(bound, task).await {
        Ok(Ok(Ok(document))) => {
            Collected::ok(path, source, Content::Json(document), started.elapsed())
        }
        Ok(Ok(Err(reason))) => {
            Collected::failed(path, source, ItemStatus::Error, reason, started.elapsed())
        }
        Ok(Err(join_error)) => Collected::failed(
            path,
            source,
            ItemStatus::Error,
            format!("the statvfs task failed: {join_error}"),
            started.elapsed(),
        ),
        Err(_) => Collected::failed(
            path,
            source,
            ItemStatus::Timeout,
            format!("statvfs did not return within {} ms", bound.as_millis()),
            started.elapsed(),
        ),
    }
}

fn statvfs(directory: &Path) -> Result<Value, String> {
    if !directory.is_dir() {
        return Err(format!(
            "the state directory {} does not exist; pass --state-dir with the service's state directory",
            directory.display()
        ));
    }
    let stats = rustix::fs::statvfs(directory).map_err(|errno| {
        format!(
            "statvfs({}) failed: {}",
            directory.display(),
            std::io::Error::from(errno)
        )
    })?;
    let fragment = stats.f_frsize;
    let total = stats.f_blocks * fragment;
    let free = stats.f_bfree * fragment;
    let available = stats.f_bavail * fragment;
    let used_percent = if total > 0 {
        ((total - free) as f64 / total as f64 * 1000.0).round() / 10.0
    } else {
        0.0
    };
    Ok(json!({
        "path": directory.display().to_string(),
        "total_bytes": total,
        "free_bytes": free,
        "available_bytes": available,
        "used_percent": used_percent,
        "inodes_total": stats.f_files,
        "inodes_free": stats.f_ffree,
    }))
}

/// The `PG*` variables that let psql connect without the DSN on its command line (where `ps`
/// would show it to every local user).
pub(crate) fn libpq_environment(dsn: &str) -> Result<Vec<(&'static str, String)>, String> {
    let mut envs: Vec<(&'static str, String)> = Vec::new();
    let keyword_to_env = |keyword: &str| -> Option<&'static str> {
        Some(match keyword {
            "host" | "hostaddr" => "PGHOST",
            "port" => "PGPORT",
            "user" => "PGUSER",
            "password" => "PGPASSWORD",
            "dbname" => "PGDATABASE",
            "sslmode" => "PGSSLMODE",
            "sslrootcert" => "PGSSLROOTCERT",
            "options" => "PGOPTIONS",
            _ => return None,
        })
    };
    let trimmed = dsn.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let url = kneo_client::Url::parse(trimmed).map_err(|error| format!("the database URL is not a valid URL ({error}); give it as postgres://user:password@host:port/dbname"))?;
        if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
            envs.push((
                "PGHOST",
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            ));
        }
        if let Some(port) = url.port() {
            envs.push(("PGPORT", port.to_string()));
        }
        if !url.username().is_empty() {
            envs.push(("PGUSER", percent_decode(url.username())));
        }
        if let Some(password) = url.password() {
            envs.push(("PGPASSWORD", percent_decode(password)));
        }
        let database = url.path().trim_start_matches('/');
        if !database.is_empty() {
            envs.push(("PGDATABASE", percent_decode(database)));
        }
        for (key, value) in url.query_pairs() {
            if let Some(name) = keyword_to_env(&key) {
                envs.retain(|(existing, _)| *existing != name);
                envs.push((name, value.into_owned()));
            }
        }
        return Ok(envs);
    }
    for pair in trimmed.split_whitespace() {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            "the database URL is neither postgres://… nor key=value pairs".to_string()
        })?;
        let value = value.trim_matches('\'').to_string();
        match keyword_to_env(key) {
            Some(name) => envs.push((name, value)),
            None => {
                return Err(format!(
                    "unsupported connection keyword {key:?}; use host, port, user, password, dbname, sslmode"
                ));
            }
        }
    }
    Ok(envs)
}

/// psql on PATH, else the newest `/usr/lib/postgresql/*/bin/psql`.
fn find_psql() -> Option<PathBuf> {
    find_on_path("psql").or_else(|| {
        let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin").join("psql"))
            .filter(|path| path.is_file())
            .collect();
        candidates.sort();
        candidates.pop()
    })
}

/// `SELECT version()` through psql, connecting from `PG*` variables with `PGCONNECT_TIMEOUT`.
pub(crate) async fn postgres_version(dsn: &str, bound: Duration) -> Collected {
    let (path, source) = ("host/postgres-version.txt", "psql: SELECT version()");
    let started = Instant::now();
    let mut envs = match libpq_environment(dsn) {
        Ok(envs) => envs,
        Err(reason) => {
            return Collected::failed(path, source, ItemStatus::Error, reason, started.elapsed());
        }
    };
    let Some(psql) = find_psql() else {
        return Collected::failed(
            path,
            source,
            ItemStatus::Error,
            "psql is not installed (install postgresql-client)",
            started.elapsed(),
        );
    };
    let connect_seconds = bound.as_secs().clamp(2, 30);
    envs.push(("PGCONNECT_TIMEOUT", connect_seconds.to_string()));
    envs.push(("PGAPPNAME", "kneo-ops-capture".into()));
    let args: Vec<&OsStr> = ["-X", "-w", "-A", "-t", "-c", "SELECT version()"]
        .iter()
        .map(OsStr::new)
        .collect();
    match run_command(&psql, &args, &envs, bound).await {
        Ok(output) if output.exit_code == Some(0) => Collected::ok(
            path,
            source,
            Content::Text(output.stdout),
            started.elapsed(),
        ),
        Ok(output) => Collected::failed(
            path,
            source,
            ItemStatus::Error,
            format!(
                "psql ended with {}: {}",
                output.exit_description(),
                output.stderr.trim()
            ),
            started.elapsed(),
        ),
        Err(error) => Collected::failed(
            path,
            source,
            status_of(&error),
            error.to_string(),
            started.elapsed(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_dsn_becomes_pg_variables() {
        let envs =
            libpq_environment("postgres://kneo:p%40ss@db.internal:5433/kneo_prod?sslmode=require")
                .expect("parses");
        let get = |name: &str| {
            envs.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("PGHOST"), Some("db.internal"));
        assert_eq!(get("PGPORT"), Some("5433"));
        assert_eq!(get("PGUSER"), Some("kneo"));
        assert_eq!(get("PGPASSWORD"), Some("p@ss"));
        assert_eq!(get("PGDATABASE"), Some("kneo_prod"));
        assert_eq!(get("PGSSLMODE"), Some("require"));
    }

    #[test]
    fn a_keyword_dsn_becomes_pg_variables_and_unknown_keywords_are_refused() {
        let envs =
            libpq_environment("host=/var/run/postgresql dbname=kneo user=ops").expect("parses");
        assert!(envs.contains(&("PGHOST", "/var/run/postgresql".into())));
        assert!(libpq_environment("host=x frobnicate=1").is_err());
        assert!(libpq_environment("not a dsn").is_err());
    }

    #[tokio::test]
    async fn disk_reports_a_missing_state_dir_with_the_fix() {
        // A bound generous enough that only a hung statvfs would reach it.
        let item = disk(
            Path::new("/nonexistent/kneo-state"),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(item.status, ItemStatus::Error);
        assert!(
            item.error
                .as_deref()
                .is_some_and(|e| e.contains("--state-dir")),
            "{:?}",
            item.error
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let item = disk(dir.path(), Duration::from_secs(60)).await;
        assert_eq!(item.status, ItemStatus::Ok, "{:?}", item.error);
    }
}
