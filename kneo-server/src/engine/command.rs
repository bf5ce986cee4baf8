//! `command:` functions and tools: an external program that reads one JSON document on stdin
//! and writes one on stdout.
//!
//! The program runs in its own process group with a cleared environment (only `PATH` and the
//! spec's `env`), and the whole group is killed when the step times out or the run is
//! cancelled (dropping the future kills it). Its stderr is kept, bounded, for the trace.

use std::collections::BTreeMap;
use std::time::Instant;

use kneo_process::{Cap, Run, RunError};
use serde_json::{Value, json};

/// Largest stdout a command may write.
const MAX_STDOUT_BYTES: usize = 4 * 1024 * 1024;
/// Stderr kept for the trace (the end of it, where errors usually are).
const MAX_STDERR_BYTES: usize = 8 * 1024;
/// `PATH` when the service itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A program and its environment, as the spec declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPlan {
    /// Program first, then its arguments.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutput {
    /// The `text` of its answer (or the answer itself when it is a JSON string).
    pub text: String,
    /// The redacted end of its stderr.
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub duration_ms: f64,
}

/// Why a command failed; the message names the program and what it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub message: String,
    /// The redacted end of its stderr, when it wrote any.
    pub stderr: String,
}

impl CommandPlan {
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or_default()
    }

    /// Runs the program with `input` on stdin and reads its JSON answer.
    pub async fn run(&self, input: &Value) -> Result<CommandOutput, CommandError> {
        let program = self.program().to_string();
        let fail = |message: String, stderr: String| CommandError { message, stderr };
        if program.is_empty() {
            return Err(fail("the command names no program".into(), String::new()));
        }
        let started = Instant::now();
        let mut command = std::process::Command::new(&program);
        command
            .args(&self.argv[1..])
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
            )
            .envs(&self.env);
        // No deadline here: the step's timeout drops this future, which kills the group. When
        // the program exits, whatever it left running in its group goes too.
        let run = Run::piped(
            command,
            Cap::head(MAX_STDOUT_BYTES),
            Cap::tail(MAX_STDERR_BYTES),
        )
        .input(format!("{input}\n"))
        .kill_group_when_done();
        let finished = run.finish().await.map_err(|error| match error {
            RunError::Spawn { error, .. } => fail(
                format!("command {program:?} could not be started: {error} (is it installed and on PATH?)"),
                String::new(),
            ),
            RunError::Wait { error, .. } => fail(
                format!("command {program:?} could not be waited for: {error}"),
                String::new(),
            ),
            RunError::TimedOut { after, .. } => fail(
                format!("command {program:?} did not finish within {} ms", after.as_millis()),
                String::new(),
            ),
        })?;
        let stderr_text = crate::redact::redacted_text(finished.stderr.text().trim());
        let status = finished.status;
        let (out, out_overflowed) = (finished.stdout.bytes, finished.stdout.overflowed);
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let stderr_note = if stderr_text.is_empty() {
            String::new()
        } else {
            format!("; stderr: {}", tail(&stderr_text, 400))
        };
        if !status.success() {
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(fail(
                format!("command {program:?} {how}{stderr_note}"),
                stderr_text,
            ));
        }
        if out_overflowed {
            return Err(fail(
                format!("command {program:?} wrote more than {MAX_STDOUT_BYTES} bytes to stdout"),
                stderr_text,
            ));
        }
        let text = String::from_utf8_lossy(&out);
        let answer: Value = serde_json::from_str(text.trim()).map_err(|error| {
            fail(
                format!(
                    "command {program:?} did not write JSON to stdout ({error}); write {{\"text\": \"...\"}} or a JSON string (docs/extending.md){stderr_note}"
                ),
                stderr_text.clone(),
            )
        })?;
        let text = match answer {
            Value::String(text) => text,
            Value::Object(ref object) => match object.get("text") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => {
                    if let Some(Value::String(error)) = object.get("error") {
                        return Err(fail(
                            format!("command {program:?} reported an error: {error}"),
                            stderr_text,
                        ));
                    }
                    answer.to_string()
                }
            },
            other => other.to_string(),
        };
        Ok(CommandOutput {
            text,
            stderr: stderr_text,
            exit_code: status.code(),
            duration_ms,
        })
    }

    /// The input document of a `command:` function (docs/extending.md).
    pub fn function_input(text: &str, run_id: &str, step_id: &str, attempt: u32) -> Value {
        json!({"text": text, "run_id": run_id, "step_id": step_id, "attempt": attempt})
    }
}

fn tail(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    if count <= chars {
        text.to_string()
    } else {
        let kept: String = text.chars().skip(count - chars).collect();
        format!("…{kept}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn shell(script: &str) -> CommandPlan {
        CommandPlan {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
        }
    }

    #[tokio::test]
    async fn reads_json_from_stdout_with_a_cleared_environment() {
        let plan = shell(
            r#"read line; printf '{"text": "%s %s %s"}' "$GREETING" "${HOME:-nohome}" "$(printf '%s' "$line" | wc -c | tr -d ' ')""#,
        );
        let output = plan
            .run(&json!({"text": "x"}))
            .await
            .expect("the command answers");
        assert!(output.text.starts_with("hello nohome "), "{}", output.text);
    }

    #[tokio::test]
    async fn a_json_string_answer_is_the_text() {
        let output = shell(r#"cat >/dev/null; echo '"plain"'"#)
            .run(&json!({}))
            .await
            .expect("answer");
        assert_eq!(output.text, "plain");
    }

    #[tokio::test]
    async fn failures_name_the_program_status_and_stderr() {
        let error = shell("echo 'boom token=abcdef' >&2; exit 3")
            .run(&json!({}))
            .await
            .expect_err("fails");
        assert!(error.message.contains("exited with status 3"), "{error}");
        assert!(error.message.contains("boom token=[REDACTED]"), "{error}");
        let error = shell("echo not-json")
            .run(&json!({}))
            .await
            .expect_err("fails");
        assert!(error.message.contains("did not write JSON"), "{error}");
        let error = CommandPlan {
            argv: vec!["/no/such/program".into()],
            env: BTreeMap::new(),
        }
        .run(&json!({}))
        .await
        .expect_err("fails");
        assert!(error.message.contains("could not be started"), "{error}");
    }

    #[tokio::test]
    async fn dropping_the_run_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("grandchild.pid");
        // A grandchild in the command's process group that would outlive the test by far.
        let plan = shell(&format!(
            "sh -c 'echo $$ > {}; exec sleep 600' & sleep 600",
            pid_file.display()
        ));
        let running = tokio::spawn(async move { plan.run(&json!({})).await });
        let grandchild = tokio::task::spawn_blocking(move || {
            kneo_testkit::process::wait_for_pid_file(&pid_file, Duration::from_secs(60))
        })
        .await
        .expect("wait for the pid file")
        .expect("the grandchild never started");
        assert!(
            !running.is_finished(),
            "the command should still be running"
        );
        running.abort();
        assert!(running.await.is_err_and(|error| error.is_cancelled()));
        // Bounded only so that a surviving grandchild fails the test instead of hanging it.
        let stopped = tokio::task::spawn_blocking(move || {
            kneo_testkit::process::wait_until_stopped(grandchild, Duration::from_secs(60))
        })
        .await
        .expect("wait for the grandchild");
        assert!(stopped, "the grandchild {grandchild} survived the kill");
    }
}
