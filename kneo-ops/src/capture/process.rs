//! Runs a local command under a time bound; a command past its bound is killed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kneo_process::{Cap, Run, RunError};

/// The most a command may print on each stream. Above the bundle's default size budget, so
/// that budget (which records an item past it as skipped) is what normally applies; this only
/// keeps a runaway command from filling memory.
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// What a finished command printed.
#[derive(Debug, Clone)]
pub(crate) struct CommandOutput {
    /// `None` when a signal ended it.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("{program} is not installed or not on PATH")]
    NotFound { program: String },
    #[error("cannot start {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{program} did not finish within {} ms and was killed", after.as_millis())]
    Timeout { program: String, after: Duration },
    #[error("{program} wrote more than {limit} bytes to {stream}; the rest was not kept")]
    TooMuchOutput {
        program: String,
        stream: &'static str,
        limit: usize,
    },
}

/// Runs `program args…` with `envs` added, stdin closed, killed when `timeout` passes.
pub(crate) async fn run_command(
    program: &Path,
    args: &[&OsStr],
    envs: &[(&str, String)],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let name = program.display().to_string();
    let mut command = std::process::Command::new(program);
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let run = Run::piped(
        command,
        Cap::head(MAX_OUTPUT_BYTES),
        Cap::head(MAX_OUTPUT_BYTES),
    )
    .deadline(timeout);
    let finished = run.finish().await.map_err(|error| match error {
        RunError::Spawn { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            CommandError::NotFound {
                program: name.clone(),
            }
        }
        RunError::Spawn { error, .. } | RunError::Wait { error, .. } => CommandError::Spawn {
            program: name.clone(),
            reason: error.to_string(),
        },
        RunError::TimedOut { after, .. } => CommandError::Timeout {
            program: name.clone(),
            after,
        },
    })?;
    for (stream, captured) in [("stdout", &finished.stdout), ("stderr", &finished.stderr)] {
        if captured.overflowed {
            return Err(CommandError::TooMuchOutput {
                program: name,
                stream,
                limit: MAX_OUTPUT_BYTES,
            });
        }
    }
    Ok(CommandOutput {
        exit_code: finished.status.code(),
        stdout: finished.stdout.text(),
        stderr: finished.stderr.text(),
    })
}

impl CommandOutput {
    /// `exit code 2`, or `a signal` when there was no code.
    pub(crate) fn exit_description(&self) -> String {
        match self.exit_code {
            Some(code) => format!("exit code {code}"),
            None => "a signal".into(),
        }
    }
}

/// The first `name` on `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_and_exit_codes_are_kept() {
        let sh = find_on_path("sh").expect("sh on PATH");
        let args: Vec<&OsStr> = vec![
            OsStr::new("-c"),
            OsStr::new("echo out; echo err >&2; echo $KNEO_TEST_VALUE; exit 3"),
        ];
        let output = run_command(
            &sh,
            &args,
            &[("KNEO_TEST_VALUE", "42".into())],
            Duration::from_secs(60),
        )
        .await
        .expect("runs");
        assert_eq!(output.exit_code, Some(3));
        assert_eq!(output.stdout, "out\n42\n");
        assert_eq!(output.stderr, "err\n");
    }

    #[tokio::test]
    async fn a_slow_command_is_killed_at_its_bound() {
        let sh = find_on_path("sh").expect("sh on PATH");
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("command.pid");
        let script = format!("echo $$ > {}; exec sleep 600", pid_file.display());
        let args: Vec<&OsStr> = vec![OsStr::new("-c"), OsStr::new(&script)];
        // The outer bound only turns a missing kill into a failure instead of a 600 s wait.
        let error = tokio::time::timeout(
            Duration::from_secs(60),
            run_command(&sh, &args, &[], Duration::from_millis(200)),
        )
        .await
        .expect("the 200 ms bound never fired")
        .expect_err("times out");
        assert!(matches!(error, CommandError::Timeout { .. }), "{error}");
        let pid = kneo_testkit::process::wait_for_pid_file(&pid_file, Duration::from_secs(60))
            .expect("the command wrote its pid");
        assert!(
            kneo_testkit::process::wait_until_stopped(pid, Duration::from_secs(60)),
            "the command {pid} still runs after its bound"
        );
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let error = run_command(
            Path::new("/nonexistent/kneo-no-such-tool"),
            &[],
            &[],
            Duration::from_secs(60),
        )
        .await
        .expect_err("missing");
        assert!(error.to_string().contains("not installed"), "{error}");
    }
}
