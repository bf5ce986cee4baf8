//! Process groups: a child that leads a group of its own can be killed together with
//! everything it started (a shell's background jobs, a server's workers), which killing the
//! child alone would leave running.

use std::io;

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};

/// The process group of a child spawned by [`spawn_in_own_group`]; the child leads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessGroup {
    leader: Pid,
}

impl ProcessGroup {
    /// SIGKILL to every process of the group.
    ///
    /// A group whose processes have all exited is not an error: the kill is a cleanup that may
    /// come after the fact. The kernel does not hand the group's id to a new process while any
    /// member of the group lives, so a kill that finds members finds ours.
    pub fn kill(&self) {
        let _ = rustix::process::kill_process_group(self.leader, Signal::KILL);
    }

    /// The process id of the group's leader (which is also the group's id).
    pub fn leader_id(&self) -> u32 {
        self.leader.as_raw_nonzero().get().unsigned_abs()
    }
}

/// Spawns `command` as the leader of a new process group, killed if its [`Child`] handle is
/// dropped while it still runs (the group is the caller's to kill, with [`ProcessGroup::kill`]).
///
/// In its own group, the child does not get the terminal's Ctrl-C either: the caller decides
/// when it stops.
pub fn spawn_in_own_group(command: &mut Command) -> io::Result<(Child, ProcessGroup)> {
    command.process_group(0).kill_on_drop(true);
    let child = command.spawn()?;
    let leader = child.id().and_then(pid_of).ok_or_else(|| {
        io::Error::other("the child was spawned but has no process id to lead its group")
    })?;
    Ok((child, ProcessGroup { leader }))
}

/// Sends SIGKILL to the process `pid`; a process that is already gone is not an error.
pub(crate) fn kill_process(pid: Pid) {
    let _ = rustix::process::kill_process(pid, Signal::KILL);
}

/// Sends SIGTERM to the process `pid`: a request to stop, which it may take its time over.
pub(crate) fn ask_to_stop(pid: Pid) {
    let _ = rustix::process::kill_process(pid, Signal::TERM);
}

/// The rustix pid for a process id from std or tokio (which hand them out as `u32`).
pub(crate) fn pid_of(id: u32) -> Option<Pid> {
    i32::try_from(id).ok().and_then(Pid::from_raw)
}

/// Kills a process group when dropped, unless it was disarmed: a run whose caller stops
/// waiting (a cancelled step, a dropped future) takes its whole group down with it.
#[derive(Debug)]
pub(crate) struct KillOnDrop {
    group: Option<ProcessGroup>,
}

impl KillOnDrop {
    pub(crate) fn new(group: Option<ProcessGroup>) -> KillOnDrop {
        KillOnDrop { group }
    }

    /// Kills the group now.
    pub(crate) fn kill(mut self) {
        if let Some(group) = self.group.take() {
            group.kill();
        }
    }

    /// Lets the group live on (a start hook's service that must keep running).
    pub(crate) fn disarm(mut self) {
        self.group = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            group.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{alive, gone};

    #[tokio::test]
    async fn killing_the_group_kills_what_the_leader_started() {
        let mut command = Command::new("sh");
        command
            .args(["-c", "sleep 60 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let (mut child, group) = spawn_in_own_group(&mut command).unwrap();
        assert_eq!(Some(group.leader_id()), child.id());
        let mut stdout = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while tokio::io::AsyncReadExt::read(&mut stdout, &mut byte)
            .await
            .unwrap()
            == 1
            && byte[0] != b'\n'
        {
            line.push(byte[0]);
        }
        let background: u32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
        assert!(alive(background));
        group.kill();
        let status = child.wait().await.unwrap();
        assert!(status.code().is_none(), "the leader was killed: {status}");
        assert!(
            gone(background).await,
            "the background sleep {background} survived its group's kill"
        );
    }

    #[tokio::test]
    async fn killing_a_group_that_is_gone_is_harmless() {
        let mut command = Command::new("true");
        let (mut child, group) = spawn_in_own_group(&mut command).unwrap();
        assert!(child.wait().await.unwrap().success());
        group.kill();
        group.kill();
    }

    #[test]
    fn ids_that_are_no_pids_are_refused() {
        assert!(pid_of(0).is_none());
        assert!(pid_of(u32::MAX).is_none());
        assert_eq!(pid_of(42).map(|pid| pid.as_raw_nonzero().get()), Some(42));
    }
}
