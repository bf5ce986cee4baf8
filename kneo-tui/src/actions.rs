//! The operator actions, each run in the background and reported into the action log:
//!
//! - capture: runs `kneo-ops capture --run-id …` (found next to kneo-tui, else on PATH) with the
//!   key in `KNEO_SERV_API_KEY` (never on the command line, where `ps` shows it);
//! - cancel: `POST /v1/runs/{id}/cancel` (needs `runs:write`);
//! - copy: the OSC 52 escape, which asks the terminal (also over SSH) to set its clipboard.
//!
//! `--read-only` and bundle mode stop these in `App::update` before any of them is reached.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;

use crate::app::{Action, LogEntry};
use crate::event::{Event, Sender};
use crate::strings;

/// What an action needs to reach the service.
#[derive(Clone)]
pub struct ActionContext {
    /// The base URL as given (may carry credentials; passed to kneo-ops, never shown).
    pub url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Where bundles are written.
    pub output_dir: PathBuf,
    /// `kneo-ops`, when found.
    pub kneo_ops: Option<PathBuf>,
}

impl std::fmt::Debug for ActionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionContext")
            .field("url", &kneo_client::client::strip_credentials(&self.url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("output_dir", &self.output_dir)
            .field("kneo_ops", &self.kneo_ops)
            .finish()
    }
}

fn entry(ok: bool, text: String) -> Event {
    Event::App(Action::Logged(LogEntry {
        at: Utc::now(),
        ok,
        text,
    }))
}

/// `name` next to the running program, else on PATH.
pub fn find_sibling_binary(name: &str) -> Option<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&file)))
        .filter(|path| path.is_file());
    sibling.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&file))
                .find(|path| path.is_file())
        })
    })
}

/// The bundle path for a run: `kneo-capture-<run8>-<UTC>.tar.gz` in `dir`.
pub fn bundle_path(dir: &Path, run_id: &str) -> PathBuf {
    let short: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(8)
        .collect();
    dir.join(format!(
        "kneo-capture-{short}-{}.tar.gz",
        Utc::now().format("%Y%m%dT%H%M%SZ")
    ))
}

/// Starts a capture in the background; its start and its end go to the action log.
pub fn spawn_capture(context: ActionContext, run_id: String, sender: Sender) {
    tokio::spawn(async move {
        let Some(kneo_ops) = context.kneo_ops.clone() else {
            let _ = sender
                .send(entry(false, strings::KNEO_OPS_MISSING.into()))
                .await;
            return;
        };
        let output = bundle_path(&context.output_dir, &run_id);
        let shown = output.display().to_string();
        let _ = sender
            .send(entry(true, strings::capture_started(&run_id, &shown)))
            .await;
        let mut command = tokio::process::Command::new(&kneo_ops);
        command
            .arg("capture")
            .arg("--url")
            .arg(&context.url)
            .arg("--run-id")
            .arg(&run_id)
            .arg("--output")
            .arg(&output)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.env_remove("KNEO_SERV_API_KEY");
        if let Some(key) = &context.api_key {
            command.env("KNEO_SERV_API_KEY", key);
        }
        let result = command.output().await;
        let event = match result {
            Err(error) => entry(
                false,
                strings::capture_failed(&format!("cannot run {}: {error}", kneo_ops.display())),
            ),
            Ok(out) => {
                let summary: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
                match (out.status.code(), summary) {
                    (Some(0 | 1), Some(summary)) => {
                        let items = summary["summary"]["items"].as_u64().unwrap_or(0) as usize;
                        let ok = summary["summary"]["ok"].as_u64().unwrap_or(0) as usize;
                        let health = summary["health"].as_str().unwrap_or("?");
                        let path = summary["bundle"].as_str().unwrap_or(&shown);
                        entry(true, strings::capture_done(path, health, ok, items))
                    }
                    (code, _) => {
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        let reason = stderr
                            .lines()
                            .rev()
                            .find(|line| !line.trim().is_empty())
                            .unwrap_or("no message")
                            .trim()
                            .to_string();
                        let code = code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "signal".into());
                        entry(
                            false,
                            strings::capture_failed(&format!("exit {code}: {reason}")),
                        )
                    }
                }
            }
        };
        let _ = sender.send(event).await;
    });
}

/// Sends `POST /v1/runs/{id}/cancel` in the background.
pub fn spawn_cancel(context: ActionContext, run_id: String, sender: Sender) {
    tokio::spawn(async move {
        let _ = sender
            .send(entry(true, strings::cancel_sent(&run_id)))
            .await;
        let event = match cancel(&context, &run_id).await {
            Ok(status) => entry(true, strings::cancel_done(&run_id, &status)),
            Err(reason) => entry(false, strings::cancel_failed(&run_id, &reason)),
        };
        let _ = sender.send(event).await;
    });
}

/// The cancel call itself; kneo-client has no write methods, so it is made here.
async fn cancel(context: &ActionContext, run_id: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(context.timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!(
        "{}/v1/runs/{}/cancel",
        context.url.trim_end_matches('/'),
        kneo_client::client::encode_component(run_id)
    );
    let mut request = http.post(&url);
    if let Some(key) = &context.api_key {
        request = request.header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = request.send().await.map_err(|error| {
        if error.is_timeout() {
            format!("no answer within {} ms", context.timeout.as_millis())
        } else {
            "the service is unreachable".to_string()
        }
    })?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(body["status"].as_str().unwrap_or("?").to_string())
    } else {
        let summary = kneo_client::wire::ErrorBody::from_text(&text)
            .map(|body| body.summary())
            .unwrap_or_default();
        Err(format!("HTTP {status} {summary}").trim().to_string())
    }
}

/// The OSC 52 sequence that puts `text` on the terminal's clipboard.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

/// Standard base64 with padding (the only encoding OSC 52 needs; no dependency for it).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn osc52_wraps_the_payload() {
        assert_eq!(osc52("run-1"), "\x1b]52;c;cnVuLTE=\x07");
    }

    #[test]
    fn bundle_paths_are_safe_and_named_after_the_run() {
        let path = bundle_path(Path::new("/tmp"), "../../etc/passwd");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(name.starts_with("kneo-capture-etcpass"), "{name}");
        assert_eq!(path.parent(), Some(Path::new("/tmp")));
    }
}
