//! The exit codes of `kneo`, `kneo-ops` and `kneo-tui`: one enum, so a code means the same thing
//! whichever program returns it, and scripts can branch on it.
//!
//! Three numbers, each with a fixed meaning (docs/cli.md § "Exit codes"):
//! - **0**: done; a check found nothing wrong.
//! - **1**: the command ran and the answer is "no": a spec is invalid, a check or restore failed
//!   or was refused, the service answered with an error, a store, lock or port could not be
//!   used; triage found the service degraded.
//! - **2**: the command could not do its job with what it was given: a bad configuration value
//!   or argument (clap also exits 2 on those), an unreadable input file, an unknown profile;
//!   triage found the service down.
//! - **3**: triage only: it cannot judge the service; fix the tool's access first (no key, key
//!   rejected, scope lacking, unreachable from here).

/// How a command ended. Several variants share a number: the name says why, the number is the
/// interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Success,
    /// 1: the command ran and the answer is "no" (invalid, failed, refused, error answer).
    Failed,
    /// 1: triage: the service works but something is wrong.
    Degraded,
    /// 2: bad configuration, arguments or input; nothing was attempted.
    Usage,
    /// 2: triage: the service does not work (or does not answer).
    Down,
    /// 3: triage: cannot judge; the tool's own access is the problem.
    CannotJudge,
}

impl Exit {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed | Exit::Degraded => 1,
            Exit::Usage | Exit::Down => 2,
            Exit::CannotJudge => 3,
        }
    }

    /// `Success` when `ok`, else `Failed`.
    pub fn success_if(ok: bool) -> Exit {
        if ok { Exit::Success } else { Exit::Failed }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn the_numbers_are_the_documented_ones() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failed,
            Exit::Degraded,
            Exit::Usage,
            Exit::Down,
            Exit::CannotJudge,
        ]
        .iter()
        .map(|exit| exit.code())
        .collect();
        assert_eq!(codes, [0, 1, 1, 2, 2, 3]);
        assert_eq!(Exit::success_if(false), Exit::Failed);
    }
}
