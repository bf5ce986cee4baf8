//! Running a program to completion: input on stdin, stdout and stderr capped, and a deadline
//! past which the program is killed, with its process group when it has one of its own.
//!
//! The caller builds a `std::process::Command` (program, arguments, environment, working
//! directory); [`Run`] owns everything else: the standard streams, the group, the deadline and
//! the kill. Dropping the future of [`Run::finish`] kills the program (and its group) too, so a
//! cancelled caller leaves nothing running.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::capped::{Cap, CappedBuffer, Captured, read_capped};
use crate::group::{KillOnDrop, kill_process, pid_of, spawn_in_own_group};

/// How long the output of a killed program may take to reach its end. The kill closes the pipes
/// of every process it reached; one outside the kill that still holds them costs only this.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// A program to run to completion. Build it with [`Run::piped`] or [`Run::into_file`], then
/// [`finish`](Run::finish) it.
#[derive(Debug)]
pub struct Run {
    command: tokio::process::Command,
    input: Option<Vec<u8>>,
    output: Output,
    deadline: Option<Duration>,
    group: Group,
}

#[derive(Debug)]
enum Output {
    Pipes {
        stdout: Cap,
        stderr: Cap,
    },
    /// Both streams into one file, read back when the program has exited.
    File {
        file: File,
        limit: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// The program stays in our process group; a kill reaches the program alone.
    Ours,
    /// The program leads a group of its own, killed with it.
    Own {
        /// Also kill the group when the program exits by itself (what it left running).
        kill_when_done: bool,
    },
}

/// How a program that ran to its end ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Its stdout; for [`Run::into_file`], stdout and stderr as they were interleaved.
    pub stdout: Captured,
    /// Its stderr; empty for [`Run::into_file`].
    pub stderr: Captured,
}

/// Why a program did not run to its end.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started; `error.kind()` is `NotFound` when it is not installed.
    Spawn { program: String, error: io::Error },
    /// Waiting for it failed.
    Wait { program: String, error: io::Error },
    /// It was still running at the deadline and was killed; what it wrote until then is kept.
    TimedOut {
        program: String,
        after: Duration,
        stdout: Captured,
        stderr: Captured,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn { program, error } => write!(f, "cannot start {program}: {error}"),
            RunError::Wait { program, error } => write!(f, "cannot wait for {program}: {error}"),
            RunError::TimedOut { program, after, .. } => write!(
                f,
                "{program} did not finish within {} ms and was killed",
                after.as_millis()
            ),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Spawn { error, .. } | RunError::Wait { error, .. } => Some(error),
            RunError::TimedOut { .. } => None,
        }
    }
}

impl Run {
    /// Runs `command` with its stdout and stderr read through pipes, each kept up to its cap.
    /// Both are read to their end, so the program never blocks on a full pipe.
    pub fn piped(command: std::process::Command, stdout: Cap, stderr: Cap) -> Run {
        Run::new(command, Output::Pipes { stdout, stderr })
    }

    /// Runs `command` with stdout and stderr both written to `file`, of which the first `limit`
    /// bytes are read back once the program has exited.
    ///
    /// For a program that may leave something running in the background (a service's start
    /// command): a pipe would stay open as long as that runs, so the run would never end, and
    /// closing our end would kill the service with SIGPIPE when it next logs. A file does not
    /// care who still holds it.
    pub fn into_file(command: std::process::Command, file: File, limit: usize) -> Run {
        Run::new(command, Output::File { file, limit })
    }

    fn new(command: std::process::Command, output: Output) -> Run {
        Run {
            command: tokio::process::Command::from(command),
            input: None,
            output,
            deadline: None,
            group: Group::Ours,
        }
    }

    /// Writes `bytes` to the program's stdin, then closes it. Without it stdin is `/dev/null`.
    /// A program that does not read its input is not an error.
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Run {
        self.input = Some(bytes.into());
        self
    }

    /// Kills the program when it runs longer than `limit`; [`finish`](Run::finish) then fails
    /// with [`RunError::TimedOut`]. Without it, the run lasts as long as the caller waits.
    pub fn deadline(mut self, limit: Duration) -> Run {
        self.deadline = Some(limit);
        self
    }

    /// Runs the program as the leader of a new process group, so that a kill (at the deadline,
    /// or when the caller stops waiting) takes everything it started along. It does not get the
    /// terminal's Ctrl-C then: it is the caller's to stop.
    pub fn own_process_group(mut self) -> Run {
        if self.group == Group::Ours {
            self.group = Group::Own {
                kill_when_done: false,
            };
        }
        self
    }

    /// Like [`own_process_group`](Run::own_process_group), and also kills the group when the
    /// program exits by itself: nothing it started outlives it.
    pub fn kill_group_when_done(mut self) -> Run {
        self.group = Group::Own {
            kill_when_done: true,
        };
        self
    }

    /// Starts the program and waits for it to finish (or for the deadline).
    pub async fn finish(self) -> Result<Finished, RunError> {
        let Run {
            mut command,
            input,
            output,
            deadline,
            group,
        } = self;
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        let spawn_error = |error| RunError::Spawn {
            program: program.clone(),
            error,
        };
        command.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let (stdout_cap, stderr_cap, output_file) = match output {
            Output::Pipes { stdout, stderr } => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
                (stdout, stderr, None)
            }
            Output::File { file, limit } => {
                command
                    .stdout(file.try_clone().map_err(spawn_error)?)
                    .stderr(file.try_clone().map_err(spawn_error)?);
                (Cap::head(0), Cap::head(0), Some((file, limit)))
            }
        };
        let (mut child, process_group) = match group {
            Group::Ours => {
                command.kill_on_drop(true);
                (command.spawn().map_err(spawn_error)?, None)
            }
            Group::Own { .. } => {
                let (child, group) = spawn_in_own_group(&mut command).map_err(spawn_error)?;
                (child, Some(group))
            }
        };
        let killer = KillOnDrop::new(process_group);
        let pid = child.id().and_then(pid_of);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let write = async move {
            if let (Some(mut stdin), Some(input)) = (stdin, input) {
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            }
        };
        let read_stdout = read_optional(stdout, stdout_cap);
        let read_stderr = read_optional(stderr, stderr_cap);
        // Whether the program has been reaped: from then on its pid may belong to another
        // process, and a kill by pid would hit that one.
        let reaped = AtomicBool::new(false);
        let wait = async {
            let status = child.wait().await;
            reaped.store(true, Ordering::SeqCst);
            status
        };
        let work = async { tokio::join!(write, read_stdout, read_stderr, wait) };
        let mut work = std::pin::pin!(work);
        let ended = match deadline {
            None => Ok(work.as_mut().await),
            Some(limit) => tokio::time::timeout(limit, work.as_mut())
                .await
                .map_err(|_| limit),
        };
        match ended {
            Ok(((), stdout, stderr, status)) => {
                match group {
                    Group::Own {
                        kill_when_done: true,
                    } => killer.kill(),
                    _ => killer.disarm(),
                }
                let status = status.map_err(|error| RunError::Wait {
                    program: program.clone(),
                    error,
                })?;
                let stdout = match output_file {
                    Some((file, limit)) => read_head(&file, limit),
                    None => stdout,
                };
                Ok(Finished {
                    status,
                    stdout,
                    stderr,
                })
            }
            Err(after) => {
                match (process_group, pid) {
                    (Some(group), _) => group.kill(),
                    (None, Some(pid)) if !reaped.load(Ordering::SeqCst) => kill_process(pid),
                    (None, _) => {}
                }
                let (stdout, stderr) =
                    match tokio::time::timeout(DRAIN_AFTER_KILL, work.as_mut()).await {
                        Ok(((), stdout, stderr, _)) => (stdout, stderr),
                        Err(_) => (Captured::default(), Captured::default()),
                    };
                killer.disarm();
                let stdout = match output_file {
                    Some((file, limit)) => read_head(&file, limit),
                    None => stdout,
                };
                Err(RunError::TimedOut {
                    program,
                    after,
                    stdout,
                    stderr,
                })
            }
        }
    }

    /// [`finish`](Run::finish) for a caller without an async runtime: drives the run on a
    /// small runtime of its own. Call it from a plain thread (or `spawn_blocking`), never from
    /// inside an async task.
    pub fn finish_blocking(self) -> Result<Finished, RunError> {
        let program = self
            .command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| RunError::Spawn { program, error })?;
        runtime.block_on(self.finish())
    }
}

/// What `cap` keeps of `stream`, or nothing when there is no stream (it goes to a file).
async fn read_optional(stream: Option<impl AsyncRead + Unpin>, cap: Cap) -> Captured {
    match stream {
        Some(stream) => read_capped(stream, cap).await,
        None => Captured::default(),
    }
}

/// The first `limit` bytes of `file`, read by position: a process still writing to it (at the
/// offset it shares with us) is not disturbed, and one that writes without end is not followed.
/// It is a local file the program just wrote, so reading it does not block for long.
fn read_head(file: &File, limit: usize) -> Captured {
    let mut buffer = CappedBuffer::new(Cap::head(limit));
    let mut chunk = [0u8; 8192];
    let mut offset = 0u64;
    while !buffer.overflowed() {
        match file.read_at(&mut chunk, offset) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                buffer.push(&chunk[..read]);
                offset += read as u64;
            }
        }
    }
    buffer.into_captured()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{alive, gone};
    use std::path::Path;
    use std::process::Command;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    fn roomy() -> (Cap, Cap) {
        (Cap::head(1 << 20), Cap::head(1 << 20))
    }

    fn read_pid(path: &Path) -> Option<u32> {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }

    /// The pid a script writes to `path`, once it has; the bound only keeps a test from hanging.
    async fn pid_in(path: &Path) -> u32 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pid) = read_pid(path) {
                return pid;
            }
            assert!(tokio::time::Instant::now() < deadline, "no pid in {path:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A file to write the output into: readable too, as `tempfile::tempfile()` is.
    fn scratch_file(dir: &Path) -> File {
        File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join("output"))
            .unwrap()
    }

    /// Kills a job a test left running on purpose.
    fn kill_leftover(pid: u32) {
        if let Some(pid) = pid_of(pid) {
            kill_process(pid);
        }
    }

    #[tokio::test]
    async fn output_exit_code_input_and_environment_are_kept() {
        let mut command = shell("read line; echo \"got $line $VALUE\"; echo oops >&2; exit 3");
        command.env("VALUE", "42");
        let (out, err) = roomy();
        let finished = Run::piped(command, out, err)
            .input("hello\n")
            .finish()
            .await
            .unwrap();
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.stdout.text(), "got hello 42\n");
        assert_eq!(finished.stderr.text(), "oops\n");
        assert!(!finished.stdout.overflowed);
    }

    #[tokio::test]
    async fn output_past_its_cap_is_cut_to_the_kept_end() {
        let command =
            shell("i=0; while [ $i -lt 2000 ]; do echo line$i; echo err$i >&2; i=$((i+1)); done");
        let finished = Run::piped(command, Cap::head(6), Cap::tail(8))
            .finish()
            .await
            .unwrap();
        assert!(finished.status.success());
        assert_eq!(finished.stdout.text(), "line0\n");
        assert!(finished.stdout.overflowed);
        assert_eq!(finished.stderr.text(), "err1999\n");
        assert!(finished.stderr.overflowed);
    }

    #[tokio::test]
    async fn a_program_that_ignores_its_input_is_not_an_error() {
        let (out, err) = roomy();
        let finished = Run::piped(shell("exec 0<&-; echo done"), out, err)
            .input(vec![b'x'; 1 << 20])
            .finish()
            .await
            .unwrap();
        assert_eq!(finished.stdout.text(), "done\n");
    }

    #[tokio::test]
    async fn a_missing_program_fails_to_spawn_with_not_found() {
        let (out, err) = roomy();
        let error = Run::piped(Command::new("/nonexistent/kneo-no-such-program"), out, err)
            .finish()
            .await
            .unwrap_err();
        match &error {
            RunError::Spawn { program, error } => {
                assert_eq!(program, "/nonexistent/kneo-no-such-program");
                assert_eq!(error.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected a spawn error, got {other:?}"),
        }
        assert!(error.to_string().contains("cannot start"), "{error}");
    }

    #[tokio::test]
    async fn past_its_deadline_the_group_is_killed_and_the_output_so_far_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("background.pid");
        let script = format!(
            "echo started; sleep 60 & echo $! > {}; wait",
            pid_file.display()
        );
        let (out, err) = roomy();
        // Long enough for the script to start its background job first, even on a busy machine.
        let limit = Duration::from_secs(1);
        let error = Run::piped(shell(&script), out, err)
            .own_process_group()
            .deadline(limit)
            .finish()
            .await
            .unwrap_err();
        let RunError::TimedOut { after, stdout, .. } = &error else {
            panic!("expected a timeout, got {error:?}");
        };
        assert_eq!(*after, limit);
        assert_eq!(stdout.text(), "started\n");
        assert!(error.to_string().contains("within 1000 ms"), "{error}");
        let background = pid_in(&pid_file).await;
        assert!(
            gone(background).await,
            "the background sleep {background} survived"
        );
    }

    #[tokio::test]
    async fn past_its_deadline_a_program_in_our_group_is_killed() {
        let (out, err) = roomy();
        let error = Run::piped(shell("echo $$; exec sleep 60"), out, err)
            .deadline(Duration::from_secs(1))
            .finish()
            .await
            .unwrap_err();
        let RunError::TimedOut { stdout, .. } = error else {
            panic!("expected a timeout, got {error:?}");
        };
        let pid: u32 = stdout.text().trim().parse().unwrap();
        assert!(gone(pid).await, "the program {pid} survived its deadline");
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("background.pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let (out, err) = roomy();
        let run = tokio::spawn(
            Run::piped(shell(&script), out, err)
                .own_process_group()
                .finish(),
        );
        let background = pid_in(&pid_file).await;
        assert!(alive(background));
        run.abort();
        assert!(run.await.unwrap_err().is_cancelled());
        assert!(
            gone(background).await,
            "the background sleep {background} outlived the dropped run"
        );
    }

    #[tokio::test]
    async fn what_a_program_leaves_behind_dies_with_it_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        for kill_when_done in [true, false] {
            let pid_file = dir.path().join(format!("left-{kill_when_done}.pid"));
            // The background job's output goes elsewhere, or the pipes would keep the run open.
            let script = format!(
                "sleep 60 >/dev/null 2>&1 & echo $! > {}; echo leaving",
                pid_file.display()
            );
            let (out, err) = roomy();
            let run = Run::piped(shell(&script), out, err).own_process_group();
            let run = if kill_when_done {
                run.kill_group_when_done()
            } else {
                run
            };
            let finished = run.finish().await.unwrap();
            assert_eq!(finished.stdout.text(), "leaving\n");
            let left = pid_in(&pid_file).await;
            if kill_when_done {
                assert!(gone(left).await, "{left} outlived its group's leader");
            } else {
                assert!(alive(left), "{left} was killed though nobody asked");
                kill_leftover(left);
            }
        }
    }

    #[test]
    fn into_a_file_a_background_job_does_not_hold_the_run_open() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("service.pid");
        let file = scratch_file(dir.path());
        let script = format!(
            "echo starting; echo warn >&2; sleep 60 & echo $! > {}",
            pid_file.display()
        );
        let finished = Run::into_file(shell(&script), file, 64 * 1024)
            .own_process_group()
            .deadline(Duration::from_secs(60))
            .finish_blocking()
            .unwrap();
        assert!(finished.status.success());
        assert_eq!(finished.stdout.text(), "starting\nwarn\n");
        let service = read_pid(&pid_file).unwrap();
        assert!(alive(service), "the service the command started was killed");
        kill_leftover(service);
    }

    #[test]
    fn into_a_file_only_the_head_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch_file(dir.path());
        let finished = Run::into_file(shell("yes | head -c 100000"), file, 10)
            .finish_blocking()
            .unwrap();
        assert_eq!(finished.stdout.text(), "y\ny\ny\ny\ny\n");
        assert!(finished.stdout.overflowed);
    }
}
